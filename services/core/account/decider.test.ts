import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import { accountDecider, replacedSince, signingKeysOf } from "./decider.ts";

const key = (c: string) => `A${c.repeat(55)}`;
const [first, second, third] = [key("B"), key("C"), key("D")];
const spec = deciderSpec(accountDecider, "account");
const added = (k: string, replaces: string, since: number) =>
  ({ type: "AccountSigningKeyAdded", data: { key: k, replaces, since } }) as const;
const retired = (k: string) => ({ type: "AccountSigningKeyRetired", data: { key: k } }) as const;

describe("account signing keys", () => {
  test("a rotation lists the new key next to the one it replaces; the new one mints", () => {
    spec
      .given()
      .when({ type: "AddSigningKey", key: second, replaces: first, since: 10 })
      .thenEvents([added(second, first, 10)]);
    const s = fold(accountDecider, [added(second, first, 10)]);
    assert.deepEqual(signingKeysOf(s, first), { listed: [first, second], current: second });
    assert.equal(replacedSince(s, first), 10);
    assert.equal(replacedSince(s, second), null);
  });

  test("before any rotation the first key is the only one", () => {
    assert.deepEqual(signingKeysOf(fold(accountDecider, []), first), { listed: [first], current: first });
  });

  test("the key that mints cannot be retired; an unlisted key is no change; a replaced one can", () => {
    spec
      .given(added(second, first, 10))
      .when({ type: "RetireSigningKey", key: second })
      .thenError("E_BAD_REQUEST");
    spec
      .given(added(second, first, 10))
      .when({ type: "RetireSigningKey", key: third })
      .thenError("E_NO_CHANGE");
    spec.given().when({ type: "RetireSigningKey", key: first }).thenError("E_NO_CHANGE");
    spec
      .given(added(second, first, 10))
      .when({ type: "RetireSigningKey", key: first })
      .thenEvents([retired(first)]);
  });

  test("a retired key is never listed again, and a rotation must replace the key in use", () => {
    const history = [added(second, first, 10), retired(first)];
    assert.deepEqual(signingKeysOf(fold(accountDecider, history), first), { listed: [second], current: second });
    spec
      .given(...history)
      .when({ type: "AddSigningKey", key: first, replaces: second, since: 20 })
      .thenError("E_BAD_REQUEST");
    spec
      .given(...history)
      .when({ type: "AddSigningKey", key: third, replaces: first, since: 20 })
      .thenError("E_BAD_REQUEST");
    spec
      .given(...history)
      .when({ type: "AddSigningKey", key: third, replaces: second, since: 20 })
      .thenEvents([added(third, second, 20)]);
    spec
      .given(...history, added(third, second, 20))
      .when({ type: "AddSigningKey", key: third, replaces: second, since: 20 })
      .thenNothing();
    const s = fold(accountDecider, [...history, added(third, second, 20)]);
    assert.deepEqual(signingKeysOf(s, first), { listed: [second, third], current: third });
  });
});
