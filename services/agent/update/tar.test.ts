// The tar reader on archives made by the system's GNU tar (gnu and pax formats, long names, gzip,
// "./" prefixes, symlinks), unpacked and compared with what went in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listTar, unpackTar } from "./tar.ts";

const LONG = `${"deep/".repeat(30)}file-with-a-name-longer-than-one-hundred-characters.txt`;

for (const format of ["gnu", "pax", "ustar"] as const) {
  test(`GNU tar --format=${format}: listed and unpacked as it was packed`, () => {
    const dir = mkdtempSync(join(tmpdir(), "unibus-tar-"));
    try {
      const src = join(dir, "src");
      mkdirSync(join(src, "bin"), { recursive: true });
      writeFileSync(join(src, "bin", "run"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
      writeFileSync(join(src, "data.bin"), Buffer.alloc(70_000, 7));
      symlinkSync("bin/run", join(src, "start"));
      if (format !== "ustar") {
        mkdirSync(join(src, ...LONG.split("/").slice(0, -1)), { recursive: true });
        writeFileSync(join(src, LONG), "long");
      }
      const archive = execFileSync("tar", [`--format=${format}`, "-czf", "-", "-C", src, "."]);
      const listed = listTar(archive);
      assert.ok(!("code" in listed), JSON.stringify(listed));
      const out = join(dir, "out");
      mkdirSync(out);
      assert.equal(unpackTar(listed, out), null);
      assert.equal(readFileSync(join(out, "bin", "run"), "utf8"), "#!/bin/sh\necho hi\n");
      assert.ok(statSync(join(out, "bin", "run")).mode & 0o100, "the exec bit survives");
      assert.deepEqual(readFileSync(join(out, "data.bin")), Buffer.alloc(70_000, 7));
      assert.equal(readlinkSync(join(out, "start")), "bin/run");
      if (format !== "ustar") assert.equal(readFileSync(join(out, LONG), "utf8"), "long");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("damaged archives are refused: bad checksum, truncation, not gzip", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-tar-"));
  try {
    writeFileSync(join(dir, "a"), "x".repeat(2000));
    const tar = execFileSync("tar", ["-cf", "-", "-C", dir, "a"]);
    const bad = Buffer.from(tar);
    bad[10] ^= 1;
    assert.match((listTar(bad) as any).message, /checksum/);
    assert.match((listTar(tar.subarray(0, 1024)) as any).message, /truncated|ends/);
    assert.match((listTar(Buffer.from([0x1f, 0x8b, 1, 2, 3])) as any).message, /gzip/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
