// The app catalog without I/O: publishing once, retries, refusals, verification and the UNIBUS_apps record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AppRecord, type AppEvent } from "../../../schemas/mod.ts";
import { deciderSpec } from "../decider-spec.ts";
import { isDomainError } from "../errors.ts";
import { newUserSeed } from "../signing/crypto.ts";
import { publicKeyOf, secretKeyFromNkeySeed, signMinisign, type MinisignSecretKey } from "../signing/minisign.ts";
import { storedEvent } from "../projection-kernel.ts";
import { releaseKey, releaseObjectName } from "../release/decider.ts";
import { appDecider, appId, appKey, appManifestBytes, appObjectName, verifyAppManifest } from "./decider.ts";
import { appProjection } from "./projection.ts";
import { manifest } from "./test-manifest.ts";

const spec = deciderSpec(appDecider, "app");

function key(): MinisignSecretKey {
  const k = secretKeyFromNkeySeed(new TextDecoder().decode(newUserSeed()));
  assert.ok(!("code" in k));
  return k;
}
const signer = key();
const signed = (m = manifest("web", "1.0.0"), k = signer) =>
  signMinisign(appManifestBytes(m), k, `unibus app ${m.name} ${m.version}`);

const published = (m = manifest("web", "1.0.0"), sig = signed(m)): AppEvent => ({
  type: "AppPublished",
  data: {
    name: m.name,
    version: m.version,
    manifest: m,
    signature: sig,
    key_id: signer.keyId,
    object: appObjectName(m.sha256),
  },
});

test("ids and keys: name@version; KV keys and object names as releases have them", () => {
  assert.equal(appId("web", "1.2.3-rc.1"), "web@1.2.3-rc.1");
  assert.equal(appKey("web", "1.2.3-rc.1"), "web.1_2_3-rc_1");
  assert.equal(appKey("web", "1.2.3"), releaseKey("web", "1.2.3"));
  assert.equal(appObjectName("ab".repeat(32)), releaseObjectName("ab".repeat(32)));
});

test("a signed manifest is published once with its key and object", () => {
  const m = manifest("web", "1.0.0");
  const sig = signed(m);
  spec
    .given()
    .when({ type: "PublishApp", manifest: m, signature: sig, keyId: signer.keyId })
    .thenEvents([published(m, sig)]);
});

test("the same manifest again is a retry; other contents under the version are refused", () => {
  const m = manifest("web", "1.0.0");
  spec
    .given(published(m))
    .when({ type: "PublishApp", manifest: m, signature: signed(m), keyId: signer.keyId })
    .thenNothing();
  const other = manifest("web", "1.0.0", { description: "changed" });
  const e = spec
    .given(published(m))
    .when({ type: "PublishApp", manifest: other, signature: signed(other), keyId: signer.keyId })
    .thenError("E_APP_EXISTS");
  assert.match(e.message, /web 1\.0\.0 is already published with other contents/);
});

test("the decider refuses a signature that is unreadable or names another key than the verified one", () => {
  const m = manifest("web", "1.0.0");
  spec
    .given()
    .when({ type: "PublishApp", manifest: m, signature: "nope", keyId: signer.keyId })
    .thenError("E_APP_UNSIGNED");
  spec
    .given()
    .when({ type: "PublishApp", manifest: m, signature: signed(m, key()), keyId: signer.keyId })
    .thenError("E_APP_WRONG_KEY");
});

test("verifyAppManifest: schema, settings schema, no signature, untrusted key, altered manifest", () => {
  const m = manifest("web", "1.0.0");
  const trusted = [publicKeyOf(signer)];
  const ok = verifyAppManifest(m, signed(m), trusted);
  assert.ok(!isDomainError(ok));
  assert.deepEqual(ok, { manifest: m, keyId: signer.keyId });
  const code = (r: unknown) => (isDomainError(r) ? r.code : "accepted");
  const bad = verifyAppManifest({ ...m, services: [] }, signed(m), trusted);
  assert.equal(code(bad), "E_APP_INVALID");
  assert.match((bad as { message: string }).message, /^not an app manifest: services: /);
  const noSettings = { ...m, settings: { type: "array" } };
  assert.equal(code(verifyAppManifest(noSettings, signed(m), trusted)), "E_APP_INVALID");
  assert.equal(code(verifyAppManifest(m, null, trusted)), "E_APP_UNSIGNED");
  assert.equal(code(verifyAppManifest(m, " ", trusted)), "E_APP_UNSIGNED");
  assert.equal(code(verifyAppManifest(m, "garbage", trusted)), "E_APP_UNSIGNED");
  assert.equal(code(verifyAppManifest(m, signed(m, key()), trusted)), "E_APP_WRONG_KEY");
  const widened = { ...m, permissions: { ...m.permissions, data_key: true } };
  const tampered = verifyAppManifest(widened, signed(m), trusted);
  assert.equal(code(tampered), "E_APP_BAD_SIGNATURE");
  assert.match((tampered as { message: string }).message, /^app web 1\.0\.0: /);
});

test("the signature covers the parsed manifest: defaults written out or left out sign the same bytes", () => {
  const m = manifest("web", "1.0.0");
  const sparse = { ...m, permissions: undefined, limits: undefined, dependencies: undefined, settings: undefined };
  assert.ok(!isDomainError(verifyAppManifest(JSON.parse(JSON.stringify(sparse)), signed(m), [publicKeyOf(signer)])));
});

test("appProjection: each published version under its key, a record of the schema", () => {
  const e = storedEvent({
    ...published(),
    kind: "app",
    aggregate: "web@1.0.0",
    seq: 7,
    ts: "2026-01-02T00:00:00.000Z",
  });
  assert.deepEqual(appProjection.keys(e), ["web.1_0_0"]);
  const r = appProjection.project(undefined, e);
  assert.ok(r);
  AppRecord.parse(r);
  assert.equal(r.published_at, "2026-01-02T00:00:00.000Z");
  assert.equal(r.seq, 7);
  assert.equal(r.object, `sha256-${"ab".repeat(32)}`);
});
