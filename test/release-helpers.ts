// Releases for tests: a tiny tar writer (so an archive can hold exactly the entry under test,
// traversal and links included), signed manifests, an object store on a real nats-server.
import { gzipSync } from "node:zlib";
import type { ReleaseManifest, ReleaseSpec } from "../schemas/mod.ts";
import { manifestBytes, sha256Hex, signMinisign, type MinisignSecretKey } from "../services/core/mod.ts";

export interface TarInput {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "fifo";
  content?: string | Uint8Array;
  target?: string;
  mode?: number;
}

function header(name: string, size: number, type: string, mode: number, link = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(`${mode.toString(8).padStart(7, "0")}\0`, 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  h.write(`${(0).toString(8).padStart(11, "0")}\0`, 136, "latin1");
  h.write("        ", 148, "latin1");
  h.write(type, 156, "latin1");
  h.write(link, 157, 100, "utf8");
  h.write("ustar\0", 257, "latin1");
  h.write("00", 263, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

export function makeTar(entries: TarInput[], gzip = true): Uint8Array {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const body = type === "file" ? Buffer.from(e.content ?? "") : Buffer.alloc(0);
    const flag = { file: "0", dir: "5", symlink: "2", hardlink: "1", fifo: "6" }[type];
    parts.push(header(e.name, body.length, flag, e.mode ?? (type === "dir" ? 0o755 : 0o644), e.target ?? ""));
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const tar = Buffer.concat(parts);
  return gzip ? gzipSync(tar) : tar;
}

/** A release whose health script exits `healthExit` and whose install step writes a marker. */
export function appRelease(version: string, o: { healthExit?: number; installExit?: number } = {}): Uint8Array {
  return makeTar([
    { name: "bin", type: "dir" },
    { name: "bin/app", content: `#!/bin/sh\necho app ${version}\n`, mode: 0o755 },
    {
      name: "install.sh",
      content: `#!/bin/sh\necho installed > installed.txt\nexit ${o.installExit ?? 0}\n`,
      mode: 0o755,
    },
    {
      name: "health.sh",
      content: `#!/bin/sh\ntest -f installed.txt || exit 3\nexit ${o.healthExit ?? 0}\n`,
      mode: 0o755,
    },
    { name: "VERSION", content: version },
  ]);
}

export const APP_SPEC: ReleaseSpec = {
  install: { command: ["./install.sh"], timeout_ms: 10_000 },
  health: { command: ["./health.sh"], timeout_ms: 2000, deadline_ms: 300, interval_ms: 50 },
  services: [],
};

export function manifestFor(
  name: string,
  version: string,
  tarball: Uint8Array,
  spec: ReleaseSpec = APP_SPEC,
  minAgent = "0.0.1",
): ReleaseManifest {
  return {
    v: 1,
    name,
    version,
    sha256: sha256Hex(tarball),
    size: tarball.length,
    min_agent_version: minAgent,
    created_at: new Date().toISOString().replace(/\.\d+Z$/, ".000Z"),
    notes: "",
    spec,
  };
}

export function sign(m: ReleaseManifest, key: MinisignSecretKey): string {
  return signMinisign(manifestBytes(m), key, `unibus release ${m.name} ${m.version}`);
}
