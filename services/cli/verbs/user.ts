// `unibus user …`: people's identities. `user add` makes the key pair unless --sign-key brings one.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { newUserSeed, signerFromSeed } from "../../core/mod.ts";
import { credsFromSeedFile, replaceSecretFile, writeSecretFile } from "../../bus/mod.ts";
import type { GlobalOptions } from "../context.ts";
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
    const seed = newUserSeed();
    signKey = signerFromSeed(seed).publicKey;
    if (!o.dryRun) {
      rmSync(`${seedPath}.pending`, { force: true });
      writeSecretFile(`${seedPath}.pending`, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
    }
    seed.fill(0);
  }
  let result;
  try {
    result = await send("user.add", {
      handle,
      sign_key: signKey,
      ...(f.role ? { role: f.role } : {}),
      ...(f["kex-key"] ? { kex_key: f["kex-key"] } : {}),
    });
  } catch (err) {
    if (seedPath) rmSync(`${seedPath}.pending`, { force: true });
    throw err;
  }
  if (result === DRY_RUN) return show(o, result, () => "");
  if (seedPath) renameSync(`${seedPath}.pending`, seedPath);
  const credsFile = result.jwt
    ? writeUserCreds(result.jwt, seedPath, seedPath ? seedPath.replace(/\.nk$/, "") : join(o.dataDir, "users", handle))
    : null;
  const { jwt: _jwt, ...shown } = result;
  return show(
    o,
    { ...shown, handle, sign_key: signKey, seed_file: seedPath, creds_file: credsFile },
    () =>
      `created user ${handle} (${signKey})${seedPath ? `; its seed is in ${seedPath}` : ""}${credsFile ? `; its NATS credentials are in ${credsFile}` : ""}`,
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
    help: "without --sign-key a new key is made and its seed saved (0600) in DATA_DIR/users/<handle>.nk (or --seed-out FILE)",
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
];
