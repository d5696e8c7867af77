import { test } from "node:test";
import assert from "node:assert/strict";
import { foldRevocation, newRevocationFold, revocationList, revocationsOf, revocationSeconds } from "./revocations.ts";

const at = (s: number) => new Date(Date.UTC(2026, 10, 23, 9, 0, s, 400)).toISOString();
const ev = (type: string, data: Record<string, unknown>, s = 0) => ({ type, data, ts: at(s) });

test("every revoking event revokes its key, at the second after the event", () => {
  const revoked = revocationsOf([
    ev("NodeEnrolled", { node: "n1", sign_key: "UNODE1" }),
    ev("NodeEnrolled", { node: "n2", sign_key: "UNODE2" }),
    ev("UserCreated", { handle: "bob", sign_key: "UBOB" }),
    ev("InviteIssued", { hash: "h1", bootstrap_key: "UBOOT" }),
    ev("NodeRevoked", { node: "n1" }, 5),
    ev("NodeLeft", { node: "n2" }, 6),
    ev("UserRevoked", { handle: "bob" }, 7),
    ev("InviteRevoked", { hash: "h1" }, 8),
    ev("IdentityRevoked", { key: "UOTHER" }, 9),
  ]);
  assert.deepEqual(Object.fromEntries(revoked), {
    UNODE1: revocationSeconds(Date.parse(at(5))),
    UNODE2: revocationSeconds(Date.parse(at(6))),
    UBOB: revocationSeconds(Date.parse(at(7))),
    UBOOT: revocationSeconds(Date.parse(at(8))),
    UOTHER: revocationSeconds(Date.parse(at(9))),
  });
  assert.equal(
    revocationSeconds(Date.parse(at(5))),
    Math.floor(Date.parse(at(5)) / 1000) + 1,
    "a JWT minted in the revocation's second is refused too",
  );
});

test("the first revocation's time stands (the IdentityRevoked after a NodeRevoked does not move it)", () => {
  const revoked = revocationsOf([
    ev("NodeEnrolled", { node: "n1", sign_key: "UNODE1" }),
    ev("NodeRevoked", { node: "n1" }, 5),
    ev("IdentityRevoked", { key: "UNODE1" }, 30),
  ]);
  assert.equal(revoked.get("UNODE1"), revocationSeconds(Date.parse(at(5))));
});

test("a name enrolled again after leaving: the old key stays revoked, the new one is not", () => {
  const revoked = revocationsOf([
    ev("NodeEnrolled", { node: "n1", sign_key: "UOLD" }),
    ev("NodeLeft", { node: "n1" }, 1),
    ev("NodeEnrolled", { node: "n1", sign_key: "UNEW" }, 2),
  ]);
  assert.deepEqual([...revoked.keys()], ["UOLD"]);
});

test("unknown names and unrelated events revoke nothing", () => {
  assert.equal(
    revocationsOf([
      ev("NodeRevoked", { node: "ghost" }),
      ev("UserRevoked", { handle: "nobody" }),
      ev("RoomCreated", { room: "r" }),
    ]).size,
    0,
  );
});

test("a key minted again is listed up to its latest cut-off, and a later real revocation wins for good", () => {
  const fold = newRevocationFold();
  const events = [
    ev("NodeEnrolled", { node: "n1", sign_key: "UNODE1" }),
    ev("IdentityReissued", { key: "UNODE1", revokes_until: 1000 }, 1),
    ev("IdentityReissued", { key: "UNODE1", revokes_until: 900 }, 2),
    ev("IdentityReissued", { key: "UNODE2", revokes_until: 1100 }, 3),
  ];
  for (const e of events) foldRevocation(fold, e);
  assert.deepEqual(fold.revoked.size, 0, "a re-mint revokes no key");
  assert.deepEqual(revocationList(fold.revoked, fold.reissued), { UNODE1: 1000, UNODE2: 1100 });
  foldRevocation(fold, ev("NodeRevoked", { node: "n1" }, 5));
  foldRevocation(fold, ev("IdentityReissued", { key: "UNODE1", revokes_until: 2 ** 40 }, 6));
  const revokedAt = revocationSeconds(Date.parse(at(5)));
  assert.equal(fold.revoked.get("UNODE1"), revokedAt, "the revocation stays recorded whatever follows");
  assert.equal(
    revocationList(fold.revoked, new Map([["UNODE1", 5]]))["UNODE1"],
    revokedAt,
    "a revoked key keeps its revocation time over an earlier cut-off",
  );
});
