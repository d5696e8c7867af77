// `unibus-agent vault adopt-key --from FILE`: the one-time migration of a control-plane node whose
// JetStream at-rest key is still a clear 0600 file. The key becomes the node's vault data key (so
// membershipd can later take it from the vault's hand-off), is split among the node's peers, and
// only then is the clear file wiped. Crash-safe because the file goes last and every step can be
// done again: the shares are distributed first (SharesDistributed records the key's commitment),
// vault.json is written second, the cold-start copy (sealed to the operator) third, then the key
// is rebuilt from the guardians and compared with the file's before the file is wiped. A rerun
// after a crash finds the distribution or vault.json, checks that it commits to this very key,
// and carries on from there; a different key already in the vault is refused.
import { existsSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";
import { PlanResult, type Reply } from "../../../schemas/mod.ts";
import { readSecretFile, wipeFile } from "../../bus/mod.ts";
import { fitsCommitment } from "../../core/mod.ts";
import type { NodeStore } from "../node-store.ts";
import { connectAsNode } from "../node-link.ts";
import { sealColdStart } from "./cold-start.ts";
import { OwnerVault } from "./owner.ts";
import type { Codes } from "../../core/mod.ts";

export class AdoptError extends Error {
  constructor(
    readonly code: Codes<"E_NOT_ENROLLED" | "E_ADOPT" | "E_TOO_FEW_PEERS" | "E_UNAVAILABLE">,
    message: string,
  ) {
    super(message);
  }
}

export interface AdoptOptions {
  store: NodeStore;
  /** The clear at-rest key file (64 hex digits). */
  from: string;
  /** The operator's curve public key (X…) the cold-start copy is sealed to; null: no cold start (refused by the CLI unless asked). */
  operatorKey: string | null;
  log: (line: string) => void;
  timeoutMs?: number;
  minGuardians?: number;
  threshold?: number | null;
}

export interface Adopted {
  node: string;
  epoch: number;
  k: number;
  n: number;
  cold_start: boolean;
  removed: string;
}

/** 64 hex digits from a 0600 file into 32 bytes, without a string holding them. */
export function readHexKey(path: string): Uint8Array {
  const buf = readSecretFile(path);
  const digits = buf.subarray(0, 64);
  const key = new Uint8Array(32);
  const nib = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1);
  let ok = buf.length >= 64 && buf.subarray(64).every((c) => c === 0x0a || c === 0x0d || c === 0x20);
  for (let i = 0; ok && i < 32; i++) {
    const hi = nib(digits[2 * i]!);
    const lo = nib(digits[2 * i + 1]!);
    if (hi < 0 || lo < 0) ok = false;
    else key[i] = (hi << 4) | lo;
  }
  buf.fill(0);
  if (!ok) {
    key.fill(0);
    throw new AdoptError("E_ADOPT", `${path} does not hold a 64-hex-digit key`);
  }
  return key;
}

export async function adoptKey(o: AdoptOptions): Promise<Adopted> {
  if (!existsSync(o.from))
    throw new AdoptError("E_ADOPT", `${o.from} does not exist (already adopted? then nothing is left to do)`);
  const key = readHexKey(o.from);
  const link = await connectAsNode(o.store, o.timeoutMs ?? 10_000, "adopt-key");
  const vault = new OwnerVault({
    node: link.node,
    dir: o.store.dir,
    signer: link.signer,
    ask: link.ask,
    request: link.request,
    log: o.log,
    adoptKey: () => key.slice(),
    minGuardians: o.minGuardians ?? 4,
    threshold: o.threshold ?? null,
    backoffUnitMs: 200,
  });
  try {
    await intoVault(vault, link.node, key, link.ask, o.log);
    if (o.operatorKey) await sealColdStart(o.store.dir, key, o.operatorKey);
    // The proof the peers hold it: the key rebuilt from K+1 guardians is the file's, byte for byte.
    const same = await vault.withKey(async (k) => k.length === key.length && timingSafeEqual(k, key));
    if (!same)
      throw new AdoptError("E_ADOPT", "the key rebuilt from the guardians is not the file's; the file is kept");
    const { epoch, k, n } = vault.info();
    wipeFile(o.from, { followLinks: true });
    o.log(
      `vault: ${link.node}'s JetStream key is now its data key, held by ${n} guardians (K=${k}); ${o.from} is wiped`,
    );
    return { node: link.node, epoch, k, n, cold_start: Boolean(o.operatorKey), removed: o.from };
  } finally {
    key.fill(0);
    await vault.stop();
    await link.nc.close().catch(() => {});
  }
}

/** Distributes the key unless a distribution of this very key is there already (a rerun). */
async function intoVault(
  vault: OwnerVault,
  node: string,
  key: Uint8Array,
  ask: (a: string, args: Record<string, unknown>) => Promise<Reply>,
  log: (l: string) => void,
): Promise<void> {
  const disk = vault.disk;
  if (disk.exists()) {
    const file = disk.read();
    if (file.genesis)
      throw new AdoptError(
        "E_ADOPT",
        `${node}'s vault is still a genesis vault; adopt a key before making one, or once it is handed over`,
      );
    if (!fitsCommitment(key, node, file.commitment))
      throw new AdoptError(
        "E_ADOPT",
        `${node} already has a vault with another data key; its JetStream key cannot be adopted into it`,
      );
    log(`vault: ${node}'s vault already holds this key; checking the guardians`);
    return;
  }
  const r = await ask("vault.plan", { owner: node });
  if (!r.ok) throw new AdoptError("E_UNAVAILABLE", `membershipd refused vault.plan: ${r.error.message}`);
  const plan = PlanResult.parse(r.result);
  if (plan.distribution) {
    if (!fitsCommitment(key, node, plan.distribution.commitment))
      throw new AdoptError(
        "E_ADOPT",
        `membershipd holds a distribution of another key of ${node} (epoch ${plan.distribution.epoch})`,
      );
    // A crash after the distribution, before vault.json: finish it.
    if (!existsSync(disk.path("store")) || !(await disk.openStore(key, node))) await disk.writeStore(key, node, {});
    disk.write({
      v: 1,
      owner: node,
      commitment: plan.distribution.commitment,
      created_at: new Date().toISOString(),
      genesis: false,
    });
    log(`vault: resumed an adoption: ${node}'s key was distributed already (epoch ${plan.distribution.epoch})`);
    return;
  }
  vault.start(true);
  for (;;) {
    await new Promise((res) => setTimeout(res, 100));
    const s = vault.info();
    if (s.state === "unlocked") return;
    if (s.state === "waiting-for-peers")
      throw new AdoptError("E_TOO_FEW_PEERS", s.problem ?? "too few peers to hold the key");
  }
}
