// The code flow's secrets: codes, the wait id and key, the sealed config.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { NodeConfig } from "../../schemas/mod.ts";
import { deriveWaitKey, newEnrollCode, normalizeCode, openConfig, sealConfig, waitIdFor } from "./enroll-code.ts";

describe("enrollment codes", () => {
  test("codes are 8 characters of an alphabet without look-alikes; input is normalised", () => {
    for (let i = 0; i < 50; i++) assert.match(newEnrollCode(), /^[A-HJ-NP-Z2-9]{8}$/);
    assert.equal(normalizeCode("abcd-efgh"), "ABCDEFGH");
    assert.equal(normalizeCode(" AbCd EfGh\n"), "ABCDEFGH");
    for (const bad of [
      "ABCDEFG",
      "ABCDEFGHJ",
      "ABCDEFG0",
      "ABCDEFGO",
      "ABCDEFG1",
      "ABCDEFGI",
      "ABCD_EFG",
      "ÄBCDEFGH",
      "",
    ])
      assert.equal(normalizeCode(bad), null, bad);
  });

  test("the wait id and key are stable for a code and differ between codes", () => {
    assert.equal(waitIdFor("ABCDEFGH"), waitIdFor("ABCDEFGH"));
    assert.notEqual(waitIdFor("ABCDEFGH"), waitIdFor("ABCDEFGJ"));
    assert.match(waitIdFor("ABCDEFGH"), /^[0-9a-f]{64}$/);
    assert.match(deriveWaitKey("ABCDEFGH"), /^[A-Za-z0-9_-]{43}$/);
  });

  test("seal/open round trip; a wrong code, a tampered box or nonce, or a non-config opens to null", async () => {
    const config: NodeConfig = {
      node: "n1",
      address: "10.0.0.1",
      jwt: "eyJ.a.b",
      urls: ["tls://127.0.0.1:4250"],
      ca: "a".repeat(64),
      cluster: "test",
    };
    const key = deriveWaitKey("ABCDEFGH");
    const sealed = await sealConfig(config, key);
    assert.deepEqual(await openConfig(sealed, key), config);
    assert.equal(await openConfig(sealed, deriveWaitKey("ABCDEFGJ")), null);
    const box = Buffer.from(sealed.box, "base64url");
    box[3]! ^= 1;
    assert.equal(await openConfig({ ...sealed, box: box.toString("base64url") }, key), null);
    const nonce = Buffer.from(sealed.nonce, "base64url");
    nonce[0]! ^= 1;
    assert.equal(await openConfig({ ...sealed, nonce: nonce.toString("base64url") }, key), null);
    assert.equal(await openConfig({ nonce: "", box: "" }, key), null);
    const notConfig = await sealConfig({ node: "n1" } as unknown as NodeConfig, key);
    assert.equal(await openConfig(notConfig, key), null);
  });
});
