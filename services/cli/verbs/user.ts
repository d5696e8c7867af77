// `unibus user …`: people's identities. `user add` makes the key pair unless --sign-key brings one,
// and with it an exchange key pair (rooms seal their keys to it) unless --kex-key brings one.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { newUserSeed, signerFromSeed } from "../../core/mod.ts";
import { credsFromSeedFile, replaceSecretFile, writeSecretFile } from "../../bus/mod.ts";
import type { GlobalOptions } from "../context.ts";
import { commitKexSeed, dropKexSeed, kexSeedPath, kexSeedSibling, newKexSeed, stageKexSeed } from "../rooms/mod.ts";
import { DRY_RUN } from "../dry-run.ts";
import { CliError, EXIT, need, table } from "../output.ts";
import { show, type Send } from "../session.ts";
import { defineVerb, type FlagValues } from "../verb.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

const ADD_FLAGS = {
  role: { type: "string" },
  "sign-key": { type: "string" },
  "kex-key": { type: "string" },
  "seed-out": { type: "string" },
} as const;

/**
 * A new identity's seed is written 0600 next to its final place first and moved there only once
 * the user exists, so a failed or retried `user add` leaves nothing behind; it is never printed.
 */
async function addUser(o: GlobalOptions, f: FlagValues<typeof ADD_FLAGS>, handle: string, send: Send): Promise<number> {
  let signKey = f["sign-key"];
  let seedPath: string | null = null;
  if (!signKey) {
    seedPath = f["seed-out"] ?? join(o.dataDir, "users", `${handle}.nk`);
    if (existsSync(seedPath))
      throw new CliError("E_USAGE", `${seedPath} already exists; move it away or pass --seed-out`, EXIT.usage);
  }
  // Whoever brings its own signing key (--sign-key) keeps its own secrets: it sets its exchange key with `user kex`.
  const kex = f["kex-key"] || !seedPath ? null : stagedKex(o, kexSeedSibling(seedPath));
  if (seedPath) {
    const seed = newUserSeed();
    signKey = signerFromSeed(seed).publicKey;
    if (!o.dryRun) {
      rmSync(`${seedPath}.pending`, { force: true });
      writeSecretFile(`${seedPath}.pending`, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
    }
    seed.fill(0);
  }
  const kexKey = f["kex-key"] ?? kex?.publicKey;
  let result;
  try {
    result = await send("user.add", {
      handle,
      sign_key: signKey,
      ...(f.role ? { role: f.role } : {}),
      ...(kexKey ? { kex_key: kexKey } : {}),
    });
  } catch (err) {
    if (seedPath) rmSync(`${seedPath}.pending`, { force: true });
    if (kex) dropKexSeed(kex.path);
    throw err;
  }
  if (result === DRY_RUN) return show(o, result, () => "");
  if (seedPath) renameSync(`${seedPath}.pending`, seedPath);
  if (kex) commitKexSeed(kex.path);
  const credsFile = result.jwt
    ? writeUserCreds(result.jwt, seedPath, seedPath ? seedPath.replace(/\.nk$/, "") : join(o.dataDir, "users", handle))
    : null;
  const { jwt: _jwt, ...shown } = result;
  return show(
    o,
    {
      ...shown,
      handle,
      sign_key: signKey,
      kex_key: kexKey ?? null,
      seed_file: seedPath,
      kex_seed_file: kex?.path ?? null,
      creds_file: credsFile,
    },
    () =>
      `created user ${handle} (${signKey})${seedPath ? `; its seed is in ${seedPath}` : ""}${kex ? `; its exchange key's seed is in ${kex.path}` : ""}${credsFile ? `; its NATS credentials are in ${credsFile}` : ""}`,
  );
}

/**
 * A new exchange pair, its seed written to `path`.pending (0600) unless --dry-run: committed once the
 * server took its public key, dropped otherwise. Refuses to replace an existing seed file.
 */
function stagedKex(o: GlobalOptions, path: string): { path: string; publicKey: string } {
  if (existsSync(path))
    throw new CliError("E_USAGE", `${path} already exists; move it away or pass --kex-key`, EXIT.usage);
  const { seed, publicKey } = newKexSeed();
  try {
    if (!o.dryRun) stageKexSeed(path, seed);
  } finally {
    seed.fill(0);
  }
  return { path, publicKey };
}

const KEX_FLAGS = { "kex-key": { type: "string" }, "seed-out": { type: "string" } } as const;

/**
 * `user kex`: sets a user's exchange key, a new pair unless --kex-key brings one. Its seed goes to
 * --seed-out, else (one's own) next to the signing identity, where room verbs look, else
 * DATA_DIR/users/<handle>.kex.nk.
 */
async function setKex(o: GlobalOptions, f: FlagValues<typeof KEX_FLAGS>, handle: string, send: Send): Promise<number> {
  const path = f["seed-out"] ?? (handle === o.as ? kexSeedPath(o) : join(o.dataDir, "users", `${handle}.kex.nk`));
  const kex = f["kex-key"] ? null : stagedKex(o, path);
  const kexKey = f["kex-key"] ?? kex!.publicKey;
  let result;
  try {
    result = await send("user.kex", { handle, kex_key: kexKey });
  } catch (err) {
    if (kex) dropKexSeed(kex.path);
    throw err;
  }
  if (result === DRY_RUN) return show(o, result, () => "");
  if (kex) commitKexSeed(kex.path);
  return show(
    o,
    { ...result, handle, kex_key: kexKey, kex_seed_file: kex?.path ?? null },
    () => `${handle}'s exchange key is ${kexKey}${kex ? `; its seed is in ${kex.path}` : ""}`,
  );
}

/** users/<handle>.creds when we hold the seed; otherwise users/<handle>.jwt for its owner to combine with theirs. */
function writeUserCreds(jwt: string, seedPath: string | null, base: string): string {
  if (seedPath) {
    replaceSecretFile(`${base}.creds`, credsFromSeedFile(jwt, seedPath));
    return `${base}.creds`;
  }
  mkdirSync(dirname(base), { recursive: true, mode: 0o700 });
  writeFileSync(`${base}.jwt`, jwt + "\n", { mode: 0o600 });
  return `${base}.jwt`;
}

export const USER_VERBS = [
  defineVerb({
    words: ["user", "add"],
    usage: "<handle> [--role admin|monitor|…] [--sign-key U…] [--kex-key X…] [--seed-out FILE]",
    help:
      "without --sign-key a new key is made and its seed saved (0600) in DATA_DIR/users/<handle>.nk (or --seed-out FILE); " +
      "then, without --kex-key, an exchange key (rooms' keys are sealed to it) too, its seed in <handle>.kex.nk beside it",
    flags: ADD_FLAGS,
    dryRun: true,
    run: ({ args, flags, o, send }) => addUser(o, flags, need(args, 1, "a handle")[0]!, send),
  }),
  defineVerb({
    words: ["user", "list"],
    usage: PAGE_USAGE,
    help: "",
    flags: LIMIT_FLAG,
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("user.list", limitArg(flags)), (r) =>
        pageText(r, table(r.items, ["handle", "role", "revoked", "sign_key", "created_at"])),
      ),
  }),
  defineVerb({
    words: ["user", "revoke"],
    usage: "<handle> [--reason TEXT]",
    help: "revoking cuts its NATS connections at once",
    flags: { reason: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [handle] = need(args, 1, "a handle");
      return show(
        o,
        await send("user.revoke", { handle, ...(flags.reason ? { reason: flags.reason } : {}) }),
        (r) => `revoked ${handle} (${r.key}): its connections are cut`,
      );
    },
  }),
  defineVerb({
    words: ["user", "kex"],
    usage: "<handle> [--kex-key X…] [--seed-out FILE]",
    help:
      "sets the exchange key rooms seal their keys to (one's own, or anyone's as an admin); without --kex-key a new pair, " +
      "its seed saved (0600) beside the signing identity for one's own, else in DATA_DIR/users/<handle>.kex.nk",
    flags: KEX_FLAGS,
    dryRun: true,
    run: ({ args, flags, o, send }) => setKex(o, flags, need(args, 1, "a handle")[0]!, send),
  }),
];
