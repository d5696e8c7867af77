// Our minisign against the real `minisign` CLI (Debian package): its signatures (prehashed and
// legacy) verify here, ours verify there, and tampering of any part is caught.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newUserSeed } from "./crypto.ts";
import {
  formatPublicKey,
  parsePublicKey,
  parseSigningKey,
  publicKeyOf,
  signMinisign,
  verifyMinisign,
  type MinisignSecretKey,
} from "./minisign.ts";

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "unibus-minisign-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An unencrypted key pair made by the real CLI (-W: no password anywhere, argv included). */
function cliKeys(dir: string) {
  execFileSync("minisign", ["-G", "-W", "-p", join(dir, "k.pub"), "-s", join(dir, "k.key")], { stdio: "ignore" });
  return { pub: readFileSync(join(dir, "k.pub"), "utf8"), sec: readFileSync(join(dir, "k.key"), "utf8") };
}

test("a signature made by the minisign CLI (prehashed and legacy) verifies; a changed message or comment does not", () =>
  withDir((dir) => {
    const { pub } = cliKeys(dir);
    const msg = join(dir, "manifest.json");
    writeFileSync(msg, '{"name":"web","version":"1.2.3"}');
    execFileSync("minisign", ["-S", "-s", join(dir, "k.key"), "-m", msg, "-t", "release web 1.2.3"], {
      stdio: "ignore",
    });
    execFileSync("minisign", ["-S", "-l", "-s", join(dir, "k.key"), "-m", msg, "-x", join(dir, "legacy.minisig")], {
      stdio: "ignore",
    });
    const key = parsePublicKey(pub);
    assert.ok(!("code" in key));
    const data = readFileSync(msg);
    const sig = readFileSync(`${msg}.minisig`, "utf8");
    assert.equal(
      Buffer.from(sig.split("\n")[1]!, "base64").subarray(0, 2).toString("latin1"),
      "ED",
      "minisign 0.11 prehashes by default (ED)",
    );
    const ok = verifyMinisign(data, sig, [key]);
    assert.ok(!("code" in ok), JSON.stringify(ok));
    assert.equal(ok.trustedComment, "release web 1.2.3");
    assert.ok(!("code" in verifyMinisign(data, readFileSync(join(dir, "legacy.minisig"), "utf8"), [key])));
    assert.equal(
      (verifyMinisign(Buffer.from('{"name":"web","version":"1.2.4"}'), sig, [key]) as any).code,
      "E_BAD_SIGNATURE",
    );
    const forgedComment = sig.replace("trusted comment: release web 1.2.3", "trusted comment: release web 9.9.9");
    assert.equal((verifyMinisign(data, forgedComment, [key]) as any).code, "E_BAD_SIGNATURE");
  }));

test("our signatures verify with the minisign CLI, from its secret key and from an nkey seed", () =>
  withDir((dir) => {
    const { sec } = cliKeys(dir);
    const seed = new TextDecoder().decode(newUserSeed());
    for (const [name, key] of [
      ["cli-key", parseSigningKey(sec)],
      ["nkey", parseSigningKey(seed)],
    ] as const) {
      assert.ok(!("code" in key), JSON.stringify(key));
      const k = key as MinisignSecretKey;
      const msg = join(dir, `${name}.json`);
      writeFileSync(msg, `{"signed_by":"${name}"}`);
      writeFileSync(`${msg}.minisig`, signMinisign(readFileSync(msg), k, `unibus ${name}`));
      writeFileSync(join(dir, `${name}.pub`), formatPublicKey(publicKeyOf(k)));
      const out = execFileSync("minisign", ["-V", "-p", join(dir, `${name}.pub`), "-m", msg], { encoding: "utf8" });
      assert.match(out, /Signature and comment signature verified/);
      assert.match(out, new RegExp(`Trusted comment: unibus ${name}`));
      writeFileSync(msg, `{"signed_by":"someone else"}`);
      assert.throws(() =>
        execFileSync("minisign", ["-V", "-p", join(dir, `${name}.pub`), "-m", msg], { stdio: "ignore" }),
      );
    }
  }));

test("a signature by a key that is not trusted, a malformed one, and an encrypted secret key are refused with codes", () =>
  withDir((dir) => {
    const a = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;
    const b = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;
    const sig = signMinisign(Buffer.from("m"), a, "c");
    assert.equal((verifyMinisign(Buffer.from("m"), sig, [publicKeyOf(b)]) as any).code, "E_RELEASE_WRONG_KEY");
    assert.equal((verifyMinisign(Buffer.from("m"), "nonsense", [publicKeyOf(a)]) as any).code, "E_MINISIGN_FORMAT");
    assert.equal((verifyMinisign(Buffer.from("m"), "", [publicKeyOf(a)]) as any).code, "E_MINISIGN_FORMAT");
    // An encrypted key's header says scrypt ("Sc"): we never ask for its password.
    const { sec } = cliKeys(dir);
    const line = sec.split("\n")[1]!;
    const raw = Buffer.from(line, "base64");
    raw.write("Sc", 2, "latin1");
    assert.equal((parseSigningKey(`untrusted comment: x\n${raw.toString("base64")}\n`) as any).code, "E_KEY_ENCRYPTED");
  }));
