// Genesis custody from the operator's side. `unibus vault genesis-key` derives the operator's
// X25519 pair from a passphrase (scrypt, a fresh salt) and prints the spec to give
// `unibus-agent run --vault --genesis-key`. `unibus node unlock --genesis <node>` opens a
// genesis-locked node: the node shows, in its status, its key sealed to the operator's key (with
// the KDF record when that key is a passphrase's) and a one-boot ephemeral key; the operator's
// seed (--kex-seed) or passphrase (--passphrase-file, the env, a prompt) opens the first, and the
// key goes back sealed to the second in a signed `unlock` command. Every secret is zeroed here.
import type { NatsConnection } from "@nats-io/transport-node";
import { AgentInfo, type VaultInfo } from "../../schemas/mod.ts";
import { agentLink, answerError, askAgent } from "./agent-request.ts";
import { readSecretFile } from "../bus/mod.ts";
import {
  curvePublicNkey,
  formatGenesisKey,
  fromBase64Url,
  kexPairFromSeed,
  newGenesisKdf,
  openSealed,
  passphrasePair,
  sealTo,
  type KexPair,
} from "../core/mod.ts";
import type { GlobalOptions } from "./context.ts";
import { CliError, EXIT, need, print, usageError } from "./output.ts";
import { MIN_PASSPHRASE_BYTES, readPassphrase } from "./passphrase.ts";

/** Where the operator's genesis secret comes from. */
export type OperatorSecret = { kind: "kex-seed"; file: string } | { kind: "passphrase"; file?: string | undefined };

/** `vault genesis-key`: the spec to give the agent; the passphrase and its pair are zeroed. */
export async function vaultGenesisKey(o: GlobalOptions, passphraseFile: string | undefined): Promise<number> {
  const passphrase = await readPassphrase({ file: passphraseFile, confirm: true });
  if (passphrase.length < MIN_PASSPHRASE_BYTES) {
    passphrase.fill(0);
    throw new CliError(
      "E_WEAK_PASSPHRASE",
      `a genesis passphrase needs at least ${MIN_PASSPHRASE_BYTES} bytes; a short one falls to an offline guess at the sealed key`,
      EXIT.usage,
    );
  }
  const kdf = newGenesisKdf();
  const started = Date.now();
  let pair: KexPair;
  try {
    pair = await passphrasePair(passphrase, kdf);
  } finally {
    passphrase.fill(0);
  }
  const ms = Date.now() - started;
  pair.secretKey.fill(0);
  const operator = curvePublicNkey(pair.publicKey);
  const spec = formatGenesisKey({ operator, kdf });
  print(
    o.json,
    { genesis_key: spec, operator, kdf, derive_ms: ms },
    () =>
      `${spec}\n(give it to unibus-agent run --vault --genesis-key; the same passphrase unlocks with unibus node unlock --genesis <node> --passphrase-file FILE; derived in ${ms} ms)`,
  );
  return EXIT.ok;
}

async function seedPair(file: string): Promise<KexPair> {
  const raw = readSecretFile(file);
  const seed = new Uint8Array(raw).slice(0, raw.toString("utf8").trimEnd().length);
  raw.fill(0);
  try {
    return await kexPairFromSeed(seed);
  } catch {
    throw new CliError("E_USAGE", `${file} holds no curve nkey seed (SX…)`, EXIT.usage);
  } finally {
    seed.fill(0);
  }
}

/**
 * The operator's pair for this vault: from the seed file, or from the passphrase and the KDF record
 * the node shows. A passphrase that does not derive the key the node's genesis key is sealed to is
 * E_BAD_PASSPHRASE, before anything is sent.
 */
async function operatorPair(node: string, vault: VaultInfo, secret: OperatorSecret): Promise<KexPair> {
  if (secret.kind === "kex-seed") return await seedPair(secret.file);
  if (!vault.genesis_kdf)
    throw new CliError(
      "E_BAD_REQUEST",
      `${node}'s genesis key is sealed to an operator nkey, not a passphrase; use --kex-seed FILE`,
      EXIT.failed,
    );
  const passphrase = await readPassphrase({ file: secret.file });
  let pair: KexPair;
  try {
    pair = await passphrasePair(passphrase, vault.genesis_kdf);
  } finally {
    passphrase.fill(0);
  }
  if (vault.genesis_operator && curvePublicNkey(pair.publicKey) !== vault.genesis_operator) {
    pair.secretKey.fill(0);
    throw new CliError(
      "E_BAD_PASSPHRASE",
      `that passphrase does not derive the operator key ${node}'s genesis key is sealed to; nothing was sent`,
      EXIT.failed,
    );
  }
  return pair;
}

export async function nodeUnlockGenesis(
  o: GlobalOptions,
  node: string,
  secret: OperatorSecret,
  connection: () => Promise<NatsConnection>,
  timeoutMs: number,
): Promise<number> {
  const link = await agentLink(o, connection);
  const status = await askAgent(link, node, "status", { node }, timeoutMs);
  if (status.kind !== "ok") throw answerError(node, "status", status, timeoutMs);
  const vault = AgentInfo.shape.vault.safeParse((status.result as { agent?: { vault?: unknown } }).agent?.vault).data;
  if (vault?.state !== "genesis-locked" || !vault.genesis_sealed || !vault.genesis_ephemeral) {
    throw new CliError(
      "E_BAD_REQUEST",
      `${node}'s vault is ${vault?.state ?? "off"}, not waiting for a genesis unlock`,
      EXIT.failed,
    );
  }
  const pair = await operatorPair(node, vault, secret);
  const key = await openSealed(vault.genesis_sealed, pair);
  pair.secretKey.fill(0);
  if (!key) {
    if (secret.kind === "passphrase")
      throw new CliError(
        "E_BAD_PASSPHRASE",
        `that passphrase does not open ${node}'s genesis key; nothing was sent`,
        EXIT.failed,
      );
    throw new CliError("E_FORBIDDEN", `${node}'s genesis key is not sealed to the key in ${secret.file}`, EXIT.failed);
  }
  let sealed: string;
  try {
    sealed = await sealTo(fromBase64Url(vault.genesis_ephemeral), key);
  } finally {
    key.fill(0);
  }
  const r = await askAgent(link, node, "unlock", { node, sealed }, Math.max(timeoutMs, 15_000));
  if (r.kind !== "ok") throw answerError(node, "unlock", r, timeoutMs);
  print(
    o.json,
    r.result,
    () => `${node}: unlocked (genesis); its key stays under the operator's key until the fleet has five nodes`,
  );
  return EXIT.ok;
}

type UnlockFlags = {
  genesis?: boolean | undefined;
  "kex-seed"?: string | undefined;
  "passphrase-file"?: string | undefined;
};

/**
 * `node unlock --genesis <node>` with --kex-seed FILE, or with the passphrase (--passphrase-file
 * FILE, the env, a prompt); `givenTimeoutMs` is --timeout when it was given.
 */
export function nodeUnlock(
  rest: string[],
  f: UnlockFlags,
  o: GlobalOptions,
  connection: () => Promise<NatsConnection>,
  givenTimeoutMs: number | undefined,
): Promise<number> {
  const [node] = need(rest, 1, "a node");
  if (!f.genesis)
    usageError("node unlock takes --genesis: a node in a fleet of five or more unlocks from its peers by itself");
  if (f["kex-seed"] !== undefined && f["passphrase-file"] !== undefined)
    usageError("give --kex-seed or --passphrase-file, not both");
  const secret: OperatorSecret =
    f["kex-seed"] !== undefined
      ? { kind: "kex-seed", file: f["kex-seed"] }
      : { kind: "passphrase", file: f["passphrase-file"] };
  return nodeUnlockGenesis(o, node!, secret, connection, givenTimeoutMs ?? 5000);
}
