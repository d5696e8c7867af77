// The mesh's interface, brought up with the system's tools: the kernel's WireGuard where `ip link
// add … type wireguard` works, wireguard-go (Debian's package, a daemon that outlives the agent)
// otherwise; then `wg set` for the key and port and `ip` for the address. An interface already
// there (the agent restarted, the kernel kept it) is taken as it is. The private key goes to `wg`
// as a file path, never in argv.
import { execFile } from "node:child_process";
import { parseWgDump, type WgDump } from "./wg-dump.ts";

export type WgMode = "kernel" | "wireguard-go";

/** Runs a program to completion, `input` on its stdin: its stdout, or a rejection carrying its stderr. */
export type Run = (file: string, args: string[], input?: string) => Promise<string>;

export const run: Run = (file, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 15_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = stderr.trim().split("\n").at(-1) || (err as NodeJS.ErrnoException).code || err.message;
      reject(new Error(`${file} ${args.slice(0, 3).join(" ")}: ${why}`));
    });
    child.stdin?.on("error", () => {}); // a program that fails before reading it closes the pipe
    child.stdin?.end(input ?? "");
  });

export interface InterfaceWanted {
  iface: string;
  keyFile: string;
  overlayIp: string;
  prefixBits: number;
  listenPort: number;
}

/** Makes the interface if it is not there; the mode it was made in, null when it was there. */
async function create(r: Run, iface: string): Promise<WgMode | null> {
  if (
    await r("ip", ["link", "show", "dev", iface]).then(
      () => true,
      () => false,
    )
  )
    return null;
  const kernel = await r("ip", ["link", "add", "dev", iface, "type", "wireguard"]).then(
    () => true,
    () => false,
  );
  if (kernel) return "kernel";
  try {
    await r("wireguard-go", [iface]);
  } catch (err) {
    throw new Error(
      `this kernel has no WireGuard and wireguard-go did not start (${(err as Error).message}); apt-get install wireguard-go`,
    );
  }
  return "wireguard-go";
}

/** Up, with the node's key, port and overlay address. */
export async function bringUp(w: InterfaceWanted, r: Run = run): Promise<WgMode | null> {
  const mode = await create(r, w.iface);
  await r("wg", ["set", w.iface, "private-key", w.keyFile, "listen-port", String(w.listenPort)]);
  await r("ip", ["address", "replace", `${w.overlayIp}/${w.prefixBits}`, "dev", w.iface]);
  await r("ip", ["link", "set", "dev", w.iface, "up"]);
  return mode;
}

/** The interface's peers and port as `wg` reports them; null when there is no such interface. */
export async function readInterface(iface: string, r: Run = run): Promise<WgDump | null> {
  const text = await r("wg", ["show", iface, "dump"]).catch(() => null);
  return text === null ? null : parseWgDump(text);
}

/** Replaces the agent's nftables table with `script` (firewall.ts) in one transaction. */
export async function applyFirewall(script: string, r: Run = run): Promise<void> {
  try {
    await r("nft", ["-f", "-"], script);
  } catch (err) {
    const why = (err as Error).message;
    throw new Error(
      /ENOENT/.test(why)
        ? "nft is not installed (apt-get install nftables): the overlay is not filtered"
        : `nftables refused the overlay's rules (${why}): the overlay is not filtered; does this kernel have nf_tables?`,
    );
  }
}

/** Runs each `wg set` call of a plan. */
export async function applyPlan(iface: string, calls: string[][], r: Run = run): Promise<void> {
  for (const args of calls) await r("wg", ["set", iface, ...args]);
}
