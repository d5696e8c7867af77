import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

/** A self-signed CA whose validity starts at `start` (YYYYMMDDHHMMSSZ): openssl ca, as req -x509 cannot. */
function caFrom(cn: string, start: string): string {
  const dir = mkdtempSync(join(tmpdir(), "unibus-ca-bundle-"));
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  try {
    writeFileSync(join(dir, "index.txt"), "");
    writeFileSync(join(dir, "serial"), "01\n");
    writeFileSync(
      join(dir, "ca.cnf"),
      [
        "[ca]\ndefault_ca = here",
        "[here]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = any",
        "[any]\ncommonName = supplied",
        "[v3]\nbasicConstraints = critical,CA:TRUE",
      ].join("\n"),
    );
    run(
      ["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"].concat([
        "-keyout",
        "k.pem",
        "-out",
        "r.pem",
        "-subj",
        `/CN=${cn}`,
      ]),
    );
    run(
      ["ca", "-batch", "-selfsign", "-config", "ca.cnf", "-keyfile", "k.pem", "-in", "r.pem", "-notext"].concat([
        "-extensions",
        "v3",
        "-startdate",
        start,
        "-enddate",
        "20991231000000Z",
        "-out",
        "c.pem",
      ]),
    );
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

test("a bundle from before the one held is kept out: a membershipd the roll has not reached answers", () => {
  const first = caFrom("first CA", "20260101000000Z");
  const second = caFrom("second CA", "20260601000000Z");
  const third = caFrom("third CA", "20261101000000Z");
  const older = /older than the one trusted now/;
  // begin's roll: an agent on {first, second} asks a membershipd still on {first}.
  assert.match(String((caBundleUpdate(first + second, first) as { keep: string }).keep), older);
  // finish's roll: an agent on {second} asks a membershipd still on {first, second}.
  assert.match(String((caBundleUpdate(second, first + second) as { keep: string }).keep), older);
  // Forward steps are taken: begin, finish, the next rotation's begin, and a begin over an abandoned one.
  assert.ok("adopt" in caBundleUpdate(first, first + second));
  assert.ok("adopt" in caBundleUpdate(first + second, second));
  assert.ok("adopt" in caBundleUpdate(second, second + third));
  assert.ok("adopt" in caBundleUpdate(first + second, first + third));
});
