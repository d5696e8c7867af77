import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { leafHash, merkleTree, rootFromProof } from "./merkle.ts";

// RFC 9162's MTH written the slow, obvious way, to check the fast one against.
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return createHash("sha256")
    .update(Buffer.from([1]))
    .update(mth(leaves.slice(0, k)))
    .update(mth(leaves.slice(k)))
    .digest();
}

const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`event ${i}`)));

test("merkle: roots match RFC 9162's definition and every proof leads to the root, for 1..70 leaves", () => {
  for (let n = 1; n <= 70; n++) {
    const leaves = leavesOf(n);
    const { root, paths } = merkleTree(leaves);
    assert.deepEqual(root, mth(leaves), `root of ${n}`);
    for (let i = 0; i < n; i++) {
      assert.ok(paths[i]!.length <= Math.ceil(Math.log2(n)), `path length ${n}/${i}`);
      assert.deepEqual(rootFromProof(leaves[i]!, i, n, paths[i]!), root, `proof ${i} of ${n}`);
    }
  }
});

test("merkle: a proof fails for another leaf, index, or a changed, extra or missing sibling", () => {
  for (const n of [2, 3, 5, 8, 13, 64]) {
    const leaves = leavesOf(n);
    const { root, paths } = merkleTree(leaves);
    for (let i = 0; i < n; i++) {
      const path = paths[i]!;
      const other = leafHash(Buffer.from("forged"));
      assert.notDeepEqual(rootFromProof(other, i, n, path), root);
      for (let j = 0; j < n; j++)
        if (j !== i) assert.notDeepEqual(rootFromProof(leaves[i]!, j, n, path), root, `index ${j} for ${i} of ${n}`);
      // A proof alone does not pin the size (leaf 0 of 3 and of 4 take the same steps): the signed
      // message carries the size (envelope.ts).
      if (path.length > 0) {
        const bent = path.map((p, k) => (k === path.length - 1 ? Buffer.from(p).fill(7, 0, 1) : p));
        assert.notDeepEqual(rootFromProof(leaves[i]!, i, n, bent), root);
        assert.equal(rootFromProof(leaves[i]!, i, n, [...path, path[0]!]), null, "an extra sibling");
        assert.notDeepEqual(rootFromProof(leaves[i]!, i, n, path.slice(1)), root, "a missing sibling");
      }
    }
  }
});

test("merkle: impossible index and size are refused", () => {
  const leaf = leafHash(Buffer.from("x"));
  assert.equal(rootFromProof(leaf, 0, 0, []), null);
  assert.equal(rootFromProof(leaf, 3, 3, []), null);
  assert.equal(rootFromProof(leaf, -1, 3, []), null);
  assert.equal(rootFromProof(leaf, 0.5, 3, []), null);
  assert.equal(rootFromProof(leaf, 0, 2, []), null, "a two-leaf tree needs one sibling");
  assert.throws(() => merkleTree([]), RangeError);
});

test("a string leaf is the leaf of its UTF-8 bytes", () => {
  for (const s of ["", "event 1", "é ü \u0000 \ud83d\ude00 \u2028", "x".repeat(5000)])
    assert.deepEqual(leafHash(s), leafHash(Buffer.from(s, "utf8")), JSON.stringify(s.slice(0, 20)));
  assert.equal(
    leafHash("abc").toString("hex"),
    createHash("sha256")
      .update(Buffer.from([0, 0x61, 0x62, 0x63]))
      .digest("hex"),
    "RFC 9162's leaf: SHA-256 of 0x00 and the data",
  );
});
