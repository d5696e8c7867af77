// An app manifest signed with a real minisign key: by the minisign CLI over appManifestBytes (as an
// author without unibus would sign it), and by our signer from the same CLI-made secret key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDomainError } from "../errors.ts";
import { canonicalJson } from "../signing/canonical.ts";
import { parsePublicKey, parseSigningKey, signMinisign, type MinisignPublicKey } from "../signing/minisign.ts";
import { appManifestBytes, verifyAppManifest } from "./decider.ts";
import { manifest } from "./test-manifest.ts";

test("a manifest signed by the minisign CLI and by our signer with a CLI-made key verifies; another key's does not", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-app-sign-"));
  try {
    const keys = (name: string) => {
      execFileSync("minisign", ["-G", "-W", "-p", join(dir, `${name}.pub`), "-s", join(dir, `${name}.key`)], {
        stdio: "ignore",
      });
      return parsePublicKey(readFileSync(join(dir, `${name}.pub`), "utf8")) as MinisignPublicKey;
    };
    const trusted = keys("author");
    keys("stranger");
    const m = manifest("web", "1.2.0", { permissions: { network: { listen: [{ name: "http", port: 8080 }] } } });
    const file = join(dir, "web.json");
    writeFileSync(file, appManifestBytes(m));
    assert.equal(readFileSync(file, "utf8"), canonicalJson(m));
    const cliSign = (key: string) => {
      execFileSync("minisign", ["-S", "-s", join(dir, `${key}.key`), "-m", file, "-t", "unibus app web 1.2.0"], {
        stdio: "ignore",
      });
      return readFileSync(`${file}.minisig`, "utf8");
    };
    const byCli = verifyAppManifest(m, cliSign("author"), [trusted]);
    assert.ok(!isDomainError(byCli), JSON.stringify(byCli));
    assert.equal(byCli.keyId, trusted.keyId);
    const secret = parseSigningKey(readFileSync(join(dir, "author.key"), "utf8"));
    assert.ok(!("code" in secret));
    const ours = verifyAppManifest(m, signMinisign(appManifestBytes(m), secret, "unibus app web 1.2.0"), [trusted]);
    assert.ok(!isDomainError(ours));
    const stranger = verifyAppManifest(m, cliSign("stranger"), [trusted]);
    assert.ok(isDomainError(stranger) && stranger.code === "E_APP_WRONG_KEY", JSON.stringify(stranger));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
