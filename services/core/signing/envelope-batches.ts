// The batches of events whose one signature a reader has verified, owned by that reader (the
// projector, a replay, a store's loads). A batch's signature is verified once; and every tree node
// a verified proof passed through is kept by its place in the tree, so the next event of the same
// batch is checked by hashing its own leaf and comparing its proof with nodes already proven: a
// couple of µs instead of an Ed25519 verify (~110 µs here) or a proof's six hashes.
//
// This is no weaker than verifying each proof against the signed root. A node kept here hashes up
// to a root the writer signed; an event passes only if its leaf equals the node kept at its own
// index and each entry of its proof equals the node kept at that entry's place (or, where nothing
// is kept yet, hashes up to one that is, and finally to the signed root). A forged event sharing a
// root with good ones has another leaf, so it matches nothing and reaches no kept node but by a
// SHA-256 collision, the same bar the plain proof check sets.
import type { EventBatchProof } from "../../../schemas/mod.ts";
import { decodeSignature, verifySignature } from "./crypto.ts";
import { leafHash, leafHash64, nodeHash, proofSteps, rootFromProof } from "./merkle.ts";

type Nodes = Map<string, string>;

/** A verified batch: its signer, its size and its proven nodes. */
interface Batch {
  signer: string;
  n: number;
  nodes: Nodes;
}

/** What a batch signature signs: a domain tag, the batch's size and its Merkle root. */
export function batchMessage(size: number, root: Uint8Array): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(size);
  return Buffer.concat([BATCH_DOMAIN, n, root]);
}

const BATCH_DOMAIN = Buffer.from("unibus event batch v1\0");

export class VerifiedBatches {
  /**
   * Per batch, by its signature's text (what makes one batch's events differ from another's): its
   * signer, size and proven nodes, base64url by place (`from:to`; the root is `0:n`).
   */
  private readonly batches = new Map<string, Batch>();
  /** Ed25519 verifies made (for tests and benches: one per batch while the batch is kept). */
  signatures = 0;

  /** `limit`: batches kept; the oldest is dropped first (a reader meets a batch's events together). */
  constructor(private readonly limit = 256) {}

  get size(): number {
    return this.batches.size;
  }

  /**
   * Whether the event whose signing bytes are `signed` is in the batch `proof` describes, under a
   * root that `signer` signed with `sig`.
   */
  verify(signer: string, sig: string, signed: string | Uint8Array, proof: EventBatchProof): boolean {
    if (typeof signer !== "string" || typeof sig !== "string") return false;
    const known = this.batches.get(sig);
    if (known && known.signer === signer && known.n === proof.n) return climb(known.nodes, leafHash64(signed), proof);
    const sigBytes = decodeSignature(sig);
    const path = decodePath(proof.path);
    const leaf = leafHash(signed);
    const root = sigBytes && path && rootFromProof(leaf, proof.i, proof.n, path);
    if (!root) return false;
    this.signatures++;
    if (!verifySignature(signer, batchMessage(proof.n, root), sigBytes)) return false;
    if (this.batches.size >= this.limit) this.batches.delete(this.batches.keys().next().value!);
    const nodes: Nodes = new Map([[`0:${proof.n}`, root.toString("base64url")]]);
    // Same tree shape as rootFromProof by construction; if they ever disagreed, keep nothing.
    if (climb(nodes, leaf.toString("base64url"), proof)) this.batches.set(sig, { signer, n: proof.n, nodes });
    return true;
  }
}

/** The path's nodes, each the canonical base64url of 32 bytes, or null. */
function decodePath(path: readonly string[]): Buffer[] | null {
  const out: Buffer[] = [];
  for (const p of path) {
    const bytes = Buffer.from(p, "base64url");
    if (bytes.length !== 32 || bytes.toString("base64url") !== p) return null;
    out.push(bytes);
  }
  return out;
}

/**
 * Climbs the proof from the leaf until it meets a proven node; true when the leaf belongs, and the
 * nodes it computed on the way (and the proof's entries below that point) are then kept as proven.
 */
function climb(nodes: Nodes, leaf: string, proof: EventBatchProof): boolean {
  const { i, n, path } = proof;
  if (!Number.isSafeInteger(i) || !Number.isSafeInteger(n) || i < 0 || i >= n) return false;
  const steps = proofSteps(i, n);
  if (path.length !== steps.length) return false;
  let seen: string[] | null = null;
  let value = leaf;
  let node: Buffer | null = null;
  for (let k = 0; ; k++) {
    const place = k < steps.length ? steps[k]!.node : `0:${n}`;
    const known = nodes.get(place);
    if (known !== undefined) {
      if (known !== value) return false;
      // Above a proven node every sibling is proven too (the proof that proved it passed them).
      for (let m = k; m < steps.length; m++) if (nodes.get(steps[m]!.sibling) !== path[m]) return false;
      if (seen) for (let s = 0; s < seen.length; s += 2) nodes.set(seen[s]!, seen[s + 1]!);
      return true;
    }
    if (k === steps.length) return false;
    const step = steps[k]!;
    const sibling = Buffer.from(path[k]!, "base64url");
    if (sibling.length !== 32 || sibling.toString("base64url") !== path[k]) return false;
    (seen ??= []).push(place, value, step.sibling, path[k]!);
    node ??= Buffer.from(leaf, "base64url");
    node = step.siblingLeft ? nodeHash(sibling, node) : nodeHash(node, sibling);
    value = node.toString("base64url");
  }
}
