import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { caBundleUpdate, caFingerprints, parseCaBundle } from "./ca-bundle.ts";

/** A self-signed certificate from real openssl: a CA unless `leaf`. */
function cert(cn: string, leaf = false): string {
  const dir = mkdtempSync(join(tmpdir(), "unibus-ca-bundle-"));
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-new",
      "-nodes",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-keyout",
      join(dir, "k.pem"),
      "-out",
      join(dir, "c.pem"),
      "-days",
      "1",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      leaf ? "basicConstraints=critical,CA:FALSE" : "basicConstraints=critical,CA:TRUE",
    ]);
    return readFileSync(join(dir, "c.pem"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const oldCa = cert("old CA");
const newCa = cert("new CA");
const otherCa = cert("someone else's CA");

test("a rotation's bundles are adopted in order: old+new, then new alone", () => {
  const both = caBundleUpdate(oldCa, oldCa + newCa);
  assert.ok("adopt" in both);
  assert.deepEqual(caFingerprints(both.adopt), caFingerprints(oldCa + newCa));
  const after = caBundleUpdate(both.adopt, newCa);
  assert.ok("adopt" in after);
  assert.deepEqual(caFingerprints(after.adopt), caFingerprints(newCa));
});

test("the same CAs in another order change nothing", () => {
  assert.deepEqual(caBundleUpdate(oldCa + newCa, newCa + oldCa), { keep: "same" });
});

test("a bundle that shares no CA with the trusted one, or is not CAs, is refused", () => {
  const swap = caBundleUpdate(oldCa, otherCa);
  assert.ok("keep" in swap && /shares no CA/.test(swap.keep));
  const leaf = caBundleUpdate(oldCa, oldCa + cert("a server", true));
  assert.ok("keep" in leaf && /is not a CA certificate/.test(leaf.keep));
  assert.match(String(parseCaBundle("nothing here")), /no certificate/);
  assert.match(String(parseCaBundle(oldCa.repeat(9))), /more than 8/);
  const garbled = oldCa.replace(/\n[A-Za-z0-9+/]{20}/, "\nAAAAAAAAAAAAAAAAAAAA");
  assert.equal(typeof parseCaBundle(garbled), "string");
});
