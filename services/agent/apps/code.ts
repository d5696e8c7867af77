// An app's code on the node: the tarball fetched (no further than its signed size), its size and
// SHA-256 checked against the signed manifest, its listing checked, then unpacked into a fresh
// directory that is renamed into place; a version already unpacked from the same tarball is kept.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import type { AppManifest } from "../../../schemas/mod.ts";
import { appObjectName, sha256Hex } from "../../core/mod.ts";
import { writeFileAtomic, fsyncDir } from "../update/state-file.ts";
import { DEFAULT_TAR_LIMITS, listTar, unpackTar } from "../update/tar.ts";
import type { ReleaseFetcher } from "../update/fetch.ts";
import type { AppsLayout } from "./layout.ts";
import type { AppProblem } from "./problem.ts";

/** `fresh`: unpacked now (a failed install removes it again); else it was there already. */
export type PlacedCode = { ok: true; dir: string; fresh: boolean } | { ok: false; error: AppProblem };

export async function placeAppCode(m: AppManifest, layout: AppsLayout, fetch: ReleaseFetcher): Promise<PlacedCode> {
  const dir = layout.code(m.name, m.version);
  const marker = layout.marker(m.name, m.version);
  if (existsSync(dir) && existsSync(marker) && readFileSync(marker, "utf8").trim() === m.sha256)
    return { ok: true, dir, fresh: false };
  const fetched = await fetch(appObjectName(m.sha256), m.size);
  if (!fetched.ok) return { ok: false, error: fetched.error };
  const bytes = fetched.value;
  if (bytes.length !== m.size)
    return tampered(`the tarball is ${bytes.length} bytes, not the ${m.size} its signed manifest says`);
  const digest = sha256Hex(bytes);
  if (digest !== m.sha256)
    return tampered(`the tarball's SHA-256 is ${digest.slice(0, 16)}…, not the signed ${m.sha256.slice(0, 16)}…`);
  const listed = listTar(bytes, DEFAULT_TAR_LIMITS);
  if ("code" in listed) return { ok: false, error: { code: listed.code, message: listed.message } };
  mkdirSync(layout.root(m.name), { recursive: true, mode: 0o700 });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  // The code is read by the app's own UID (bound read-only into its sandbox).
  mkdirSync(tmp, { mode: 0o755 });
  const problem = unpackTar(listed, tmp);
  if (problem) {
    rmSync(tmp, { recursive: true, force: true });
    return { ok: false, error: { code: problem.code, message: problem.message } };
  }
  rmSync(marker, { force: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  fsyncDir(layout.root(m.name));
  writeFileAtomic(marker, `${m.sha256}\n`, 0o600);
  return { ok: true, dir, fresh: true };
}

/** Deletes a version's code and its marker. */
export function removeAppCode(layout: AppsLayout, app: string, version: string): void {
  rmSync(layout.marker(app, version), { force: true });
  rmSync(layout.code(app, version), { recursive: true, force: true });
}

const tampered = (message: string): PlacedCode => ({ ok: false, error: { code: "E_RELEASE_TAMPERED", message } });
