// A LUKS device a service declares (`luks` in its config), opened with the node's data key and
// mounted (nodev, nosuid) on one of the service's writable paths before the service starts;
// unmounted and closed after it stops. Only an agent running as root that was started
// with --allow-luks does it, and only with cryptsetup installed. The key goes to cryptsetup on its
// stdin (`--key-file -`), never in argv or a file; the raw 32 bytes are the LUKS passphrase. A
// device that is not LUKS yet is formatted only when its config says `format: true`.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { Result } from "../../core/mod.ts";

export const CRYPTSETUP = "/usr/sbin/cryptsetup";

export interface LuksTarget {
  device: string;
  name: string;
  format?: boolean;
  mount: string;
}

/** The device's mapper path once it is open and mounted. */
export type LuksResult = Result<string, "E_LUKS_NOT_ALLOWED" | "E_LUKS">;

/** Why this agent may not open LUKS devices, or null when it may. */
export function luksRefusal(allowed: boolean, cryptsetup = CRYPTSETUP): string | null {
  if (!allowed) return "the agent was not started with --allow-luks";
  if (process.getuid?.() !== 0) return "opening a LUKS device needs the agent to run as root";
  if (!existsSync(cryptsetup)) return `${cryptsetup} is not installed (apt-get install cryptsetup-bin)`;
  return null;
}

function run(
  cryptsetup: string,
  args: string[],
  stdin: Uint8Array | null,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cryptsetup, args, {
      stdio: ["pipe", "ignore", "pipe"],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    let stderr = "";
    p.stderr!.on("data", (d) => (stderr += d));
    p.once("error", (e) => resolve({ code: null, stderr: e.message }));
    p.once("exit", (code) => resolve({ code, stderr: stderr.trim().slice(0, 300) }));
    p.stdin!.on("error", () => {});
    p.stdin!.end(stdin ? Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength) : undefined);
  });
}

export async function openLuks(
  t: LuksTarget,
  key: Uint8Array,
  o: { allowed: boolean; cryptsetup?: string },
): Promise<LuksResult> {
  const cs = o.cryptsetup ?? CRYPTSETUP;
  const refused = luksRefusal(o.allowed, cs);
  if (refused)
    return { ok: false, error: { code: "E_LUKS_NOT_ALLOWED", message: `cannot open ${t.device}: ${refused}` } };
  const mapper = `/dev/mapper/${t.name}`;
  const fail = (what: string, stderr: string): LuksResult => ({
    ok: false,
    error: { code: "E_LUKS", message: `${what} failed: ${stderr}` },
  });
  let fresh = false;
  if (!existsSync(mapper)) {
    if ((await run(cs, ["isLuks", t.device], null)).code !== 0) {
      if (!t.format)
        return {
          ok: false,
          error: {
            code: "E_LUKS",
            message: `${t.device} is not a LUKS device (set luks.format to format it with the data key)`,
          },
        };
      const f = await run(cs, ["luksFormat", "--batch-mode", "--type", "luks2", "--key-file", "-", t.device], key);
      if (f.code !== 0) return fail(`cryptsetup luksFormat ${t.device}`, f.stderr);
      fresh = true;
    }
    const r = await run(cs, ["open", "--type", "luks", "--key-file", "-", t.device, t.name], key);
    if (r.code !== 0) return fail(`cryptsetup open ${t.device}`, r.stderr);
  }
  if (fresh) {
    const m = await run("/usr/sbin/mkfs.ext4", ["-q", mapper], null);
    if (m.code !== 0) return fail(`mkfs.ext4 ${mapper}`, m.stderr);
  }
  if (!isMounted(t.mount)) {
    const m = await run("/usr/bin/mount", ["-o", "nodev,nosuid", mapper, t.mount], null);
    if (m.code !== 0) return fail(`mount ${mapper} ${t.mount}`, m.stderr);
  }
  return { ok: true, value: mapper };
}

export async function closeLuks(t: LuksTarget, cryptsetup = CRYPTSETUP): Promise<void> {
  if (isMounted(t.mount)) await run("/usr/bin/umount", [t.mount], null);
  if (existsSync(`/dev/mapper/${t.name}`)) await run(cryptsetup, ["close", t.name], null);
}

function isMounted(point: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === point);
}
