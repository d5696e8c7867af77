// `unibus vault …`: the vaults' state, and the operator's genesis and cold-start keys.
import { vaultGenesisKey } from "../genesis.ts";
import { coldAnswerVerb } from "../vault-cold.ts";
import { vaultStatus } from "../vault.ts";
import { defineVerb } from "../verb.ts";

/** How long each agent gets to say how its vault is, unless --timeout says. */
const VAULT_STATUS_TIMEOUT_MS = 2000;

export const VAULT_VERBS = [
  defineVerb({
    words: ["vault", "status"],
    usage: "",
    help: "each vault-mode node: K, N, epoch, guardians active and reachable, unlock state",
    flags: {},
    dryRun: true,
    run: ({ o, givenTimeoutMs, send, connection }) =>
      vaultStatus(o, send, connection, givenTimeoutMs ?? VAULT_STATUS_TIMEOUT_MS),
  }),
  defineVerb({
    words: ["vault", "genesis-key"],
    usage: "[--passphrase-file FILE]",
    help:
      "derives the operator's genesis key from a passphrase (scrypt, a new salt) and prints the spec for unibus-agent run --vault " +
      "--genesis-key; the passphrase comes from FILE (mode 0600), UNIBUS_GENESIS_PASSPHRASE or a prompt (echo off), never argv",
    flags: { "passphrase-file": { type: "string" } },
    dryRun: "derives a key here; there is no command to print with --dry-run",
    run: ({ flags, o }) => vaultGenesisKey(o, flags["passphrase-file"]),
  }),
  defineVerb({
    words: ["vault", "cold-answer"],
    usage: "--kex-seed FILE",
    help:
      "full-cluster cold start: reads the request line of unibus-agent vault cold-unlock on stdin, prints the answer line " +
      "(the node's key sealed to its one-time key); no NATS",
    flags: { "kex-seed": { type: "string" } },
    dryRun: "answers on stdout without sending anything; there is no command to print with --dry-run",
    run: ({ flags }) => coldAnswerVerb(flags),
  }),
];
