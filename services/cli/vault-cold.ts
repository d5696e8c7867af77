// `unibus vault cold-answer --kex-seed FILE`: the operator's half of a full-cluster cold start
// (services/agent/vault/cold-start.ts). It reads the node's request line on stdin, opens the
// node's data key with the operator's curve seed, checks it against the commitment in the
// request, seals it to the request's one-time ephemeral key and prints that one line. The seed
// and the key stay in this process; neither touches a disk or the network.
import { readFileSync } from "node:fs";
import { ColdStartRequest } from "../../schemas/mod.ts";
import { readSecretFile } from "../bus/mod.ts";
import { fitsCommitment, fromBase64Url, kexPairFromSeed, openSealed, sealTo } from "../core/mod.ts";
import { CliError, EXIT, usageError } from "./output.ts";

export async function coldAnswer(requestLine: string, kexSeedFile: string): Promise<{ node: string; answer: string }> {
  let parsed;
  try {
    parsed = ColdStartRequest.safeParse(JSON.parse(requestLine));
  } catch {
    parsed = null;
  }
  if (!parsed?.success)
    throw new CliError(
      "E_BAD_REQUEST",
      "stdin holds no cold-start request line (the one unibus-agent vault cold-unlock prints)",
      EXIT.failed,
    );
  const req = parsed.data;
  const raw = readSecretFile(kexSeedFile);
  const seed = new Uint8Array(raw).slice(0, raw.toString("utf8").trimEnd().length);
  raw.fill(0);
  let pair;
  try {
    pair = await kexPairFromSeed(seed);
  } catch {
    throw new CliError("E_USAGE", `${kexSeedFile} holds no curve nkey seed (SX…)`, EXIT.usage);
  } finally {
    seed.fill(0);
  }
  const key = await openSealed(req.sealed, pair);
  pair.secretKey.fill(0);
  if (!key)
    throw new CliError(
      "E_FORBIDDEN",
      `${req.node}'s cold-start key is not sealed to the key in ${kexSeedFile}`,
      EXIT.failed,
    );
  try {
    if (!fitsCommitment(key, req.node, req.commitment))
      throw new CliError("E_SHARE_MISMATCH", `the key sealed for ${req.node} does not fit its commitment`, EXIT.failed);
    return { node: req.node, answer: await sealTo(fromBase64Url(req.ephemeral), key) };
  } finally {
    key.fill(0);
  }
}

export async function coldAnswerVerb(f: { "kex-seed"?: string | undefined }): Promise<number> {
  const seedFile =
    f["kex-seed"] ?? usageError("--kex-seed FILE: the operator's curve nkey seed the cold-start key is sealed to");
  const line =
    readFileSync(0, "utf8")
      .split("\n")
      .find((l) => l.trim().startsWith("{")) ?? "";
  const { node, answer } = await coldAnswer(line.trim(), seedFile);
  process.stderr.write(`unibus: the answer for ${node} (give it to unibus-agent vault cold-unlock on that node):\n`);
  process.stdout.write(answer + "\n");
  return EXIT.ok;
}
