// A full-cluster cold start: every control-plane node's JetStream is locked, so the shares (which
// live in JetStream) cannot be fetched and no node can unlock from its peers. For that case a
// control-plane node keeps, beside vault.json, `cold-start.key`: its data key sealed to the
// operator's X25519 (curve nkey) public key, the genesis vault's scheme kept for good. It opens
// only with the operator's curve seed, which never comes to the node:
//   on the node:      unibus-agent vault cold-unlock          prints one request line (the sealed
//                                                            key, the commitment and a one-time
//                                                            ephemeral public key) and waits
//   the operator:     unibus vault cold-answer --kex-seed F   reads the line, opens the key, checks
//                                                            it against the commitment, seals it
//                                                            to the ephemeral key, prints one line
//   on the node:      (the answer on stdin)                   opens it, checks the commitment again
//                                                            and hands it to membershipd on tmpfs
// Neither line is a secret on its own; the key is in the clear only in the two processes' memory
// and in the tmpfs hand-off until membershipd takes it. Once two of three servers run, the last
// one (and every agent) unlocks from its peers as usual.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ColdStartRequest } from "../../../schemas/mod.ts";
import { replaceSecretFile } from "../../bus/mod.ts";
import { curvePublicRaw, ephemeralPair, fitsCommitment, openSealed, sealTo, toBase64Url } from "../../core/mod.ts";
import type { KeyHandoff } from "./handoff.ts";
import { VaultDisk } from "./local.ts";
import type { Codes } from "../../core/mod.ts";

export const COLD_START_FILE = "cold-start.key";

const ColdStartFile = z
  .object({ v: z.literal(1), operator: z.string().regex(/^X[A-Z2-7]{55}$/), sealed: z.string() })
  .strict();

export class ColdStartError extends Error {
  constructor(
    readonly code: Codes<"E_NO_COLD_START" | "E_SHARE_MISMATCH" | "E_BAD_REQUEST">,
    message: string,
  ) {
    super(message);
  }
}

export async function sealColdStart(dir: string, key: Uint8Array, operator: string): Promise<void> {
  const file = ColdStartFile.parse({ v: 1, operator, sealed: await sealTo(curvePublicRaw(operator), key) });
  replaceSecretFile(join(dir, COLD_START_FILE), JSON.stringify(file) + "\n");
}

export function hasColdStart(dir: string): boolean {
  return existsSync(join(dir, COLD_START_FILE));
}

/** The node's side: the request, then (given the operator's answer) the key into the hand-off. */
export async function coldUnlock(o: {
  node: string;
  dir: string;
  handoff: KeyHandoff;
  answer: (request: string) => Promise<string>;
}): Promise<void> {
  const disk = new VaultDisk(o.dir);
  if (!disk.exists() || !hasColdStart(o.dir))
    throw new ColdStartError(
      "E_NO_COLD_START",
      `${o.dir} holds no vault with a cold-start copy (unibus-agent vault adopt-key --operator-key makes one)`,
    );
  const cold = ColdStartFile.parse(JSON.parse(readFileSync(join(o.dir, COLD_START_FILE), "utf8")));
  const { commitment } = disk.read();
  const eph = await ephemeralPair();
  try {
    const request = ColdStartRequest.parse({
      v: 1,
      node: o.node,
      operator: cold.operator,
      sealed: cold.sealed,
      commitment,
      ephemeral: toBase64Url(eph.publicKey),
    });
    const answer = (await o.answer(JSON.stringify(request))).trim();
    const key = await openSealed(answer, eph);
    if (!key) throw new ColdStartError("E_BAD_REQUEST", "the answer is not sealed to this request's key");
    try {
      if (!fitsCommitment(key, o.node, commitment))
        throw new ColdStartError(
          "E_SHARE_MISMATCH",
          `that is not ${o.node}'s data key (it does not fit the commitment)`,
        );
      o.handoff.giveAtRest(key);
    } finally {
      key.fill(0);
    }
  } finally {
    eph.secretKey.fill(0);
  }
}
