// Whether a node takes an app: signed by one of its own keys, the app and version desired, an agent
// new enough, every permission enforceable here; refusals are one sentence with their code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AppManifest, type AppManifestInput } from "../../../schemas/mod.ts";
import {
  appManifestBytes,
  newUserSeed,
  parseSigningKey,
  publicKeyOf,
  signMinisign,
  type MinisignSecretKey,
} from "../../core/mod.ts";
import { admitApp, type AdmitContext, type AppToRun } from "./admit.ts";
import { AppsLayout } from "./layout.ts";

const key = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;
const other = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;

function signedApp(more: Partial<AppManifestInput> = {}, by = key): AppToRun {
  const m = AppManifest.parse({
    v: 1,
    kind: "app",
    name: "notes",
    version: "1.0.0",
    description: "",
    sha256: "b".repeat(64),
    size: 10,
    min_agent_version: "0.1.0",
    created_at: "2026-12-01T00:00:00.000Z",
    services: [{ name: "web", command: "bin/web" }],
    ...more,
  });
  return {
    app: "notes",
    version: "1.0.0",
    manifest: JSON.parse(JSON.stringify(m)),
    signature: signMinisign(appManifestBytes(m), by, "unibus app"),
    settings: {},
  };
}

const ctx = (more: Partial<AdmitContext> = {}): AdmitContext => ({
  layout: new AppsLayout("/var/lib/unibus/apps"),
  trustedKeys: () => [publicKeyOf(key)],
  agentVersion: "0.2.0",
  landlockNet: () => true,
  dataKey: false,
  ...more,
});

test("a signed app is admitted with its services at their places on the node", () => {
  const r = admitApp(signedApp(), ctx());
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.keyId, key.keyId);
  assert.deepEqual(
    r.configs.map((c) => [c.name, c.command]),
    [["notes-web", "/var/lib/unibus/apps/notes/1.0.0/bin/web"]],
  );
});

test("refusals: another key, no signature, another app than desired, an agent too old, unenforceable ports", () => {
  const cases: [string, AppToRun, AdmitContext, string, RegExp][] = [
    ["another key", signedApp({}, other), ctx(), "E_APP_WRONG_KEY", /notes 1\.0\.0/],
    ["unsigned", { ...signedApp(), signature: "" }, ctx(), "E_APP_UNSIGNED", /no signature/],
    ["not this app", { ...signedApp(), version: "1.0.1" }, ctx(), "E_APP_INVALID", /not of notes 1\.0\.1 as desired/],
    [
      "too old",
      signedApp({ min_agent_version: "0.3.0" }),
      ctx(),
      "E_AGENT_TOO_OLD",
      /needs agent 0\.3\.0 or newer; this one is 0\.2\.0/,
    ],
    [
      "no landlock",
      signedApp({ permissions: { network: { listen: [{ name: "http", port: 8080 }] } } }),
      ctx({ landlockNet: () => false }),
      "E_APP_UNENFORCEABLE",
      /listens on TCP port 8080, and this kernel lacks Landlock's TCP port rules/,
    ],
  ];
  for (const [what, app, c, code, message] of cases) {
    const r = admitApp(app, c);
    assert.equal(!r.ok && r.error.code, code, `${what}: ${JSON.stringify(r)}`);
    assert.match(!r.ok ? r.error.message : "", message, what);
  }
  // Outbound alone is narrowed by the same helper (no port to listen on): refused as well, and no network needs none.
  const out = admitApp(signedApp({ permissions: { network: { outbound: true } } }), ctx({ landlockNet: () => false }));
  assert.equal(!out.ok && out.error.code, "E_APP_UNENFORCEABLE");
  assert.match(!out.ok ? out.error.message : "", /connects out, and this kernel lacks Landlock's TCP port rules/);
  assert.ok(admitApp(signedApp(), ctx({ landlockNet: () => false })).ok);
});
