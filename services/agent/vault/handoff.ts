// Where an unlocked data key goes on its own host: a runtime directory in memory
// ($UNIBUS_KEY_RUNTIME_DIR, default /run/unibus/<node>/, refused unless tmpfs or ramfs; see
// services/bus/key-handoff.ts) with
//   services/<name>.key  one copy per service that declares `data_key`, 0600 and (agent as root)
//                        owned by the service's UID; bound read-only into its sandbox
//   at-rest.key          membershipd's JetStream key, written only while membershipd asks for it
//                        (at-rest.key.want) and taken (wiped, unlinked) by membershipd at once
//   vault-state.json     the vault's state (no secret): membershipd's /healthz shows it while it waits
// Every file is wiped (zeros, then unlinked) when the agent stops, leaves or is revoked. Key bytes
// are written from buffers that are zeroed after; the key is never a JS string here.
import { existsSync, readdirSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { VaultInfo } from "../../../schemas/mod.ts";
import { prepareKeyDir, wantPath, vaultStatePath, wipeFile, writeKeyFile } from "../../bus/mod.ts";

export interface KeyConsumer {
  name: string;
  uid: number;
  gid: number;
}

/** The agent's runtime directory for keys. */
export function keyRuntimeDir(node: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.UNIBUS_KEY_RUNTIME_DIR || `/run/unibus/${node}`;
}

const HEX = "0123456789abcdef";

/** The key as hex digits and a newline, in a buffer the caller zeroes (no string ever holds it). */
export function hexLine(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length * 2 + 1);
  key.forEach((b, i) => {
    out[2 * i] = HEX.charCodeAt(b >> 4);
    out[2 * i + 1] = HEX.charCodeAt(b & 15);
  });
  out[out.length - 1] = 0x0a;
  return out;
}

export class KeyHandoff {
  private readonly given = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly root = process.getuid?.() === 0,
  ) {}

  get atRestPath(): string {
    return join(this.dir, "at-rest.key");
  }

  servicePath(name: string): string {
    return join(this.dir, "services", `${name}.key`);
  }

  /** The key file of a service, when one has been handed to it (the sandbox binds it). */
  serviceKeyFile(name: string): string | null {
    return this.given.has(name) && existsSync(this.servicePath(name)) ? this.servicePath(name) : null;
  }

  /** Checks the directory (ours, 0700, in memory); throws KeyHandoffError. */
  prepare(): void {
    prepareKeyDir(this.dir);
  }

  /** One key file per consumer. */
  giveServices(key: Uint8Array, consumers: readonly KeyConsumer[]): void {
    if (consumers.length === 0) return;
    this.prepare();
    prepareKeyDir(join(this.dir, "services"));
    const line = hexLine(key);
    try {
      for (const c of consumers) {
        writeKeyFile(this.servicePath(c.name), line, this.root ? { uid: c.uid, gid: c.gid } : undefined);
        this.given.add(c.name);
      }
    } finally {
      line.fill(0);
    }
  }

  /** membershipd is waiting for its key (it left at-rest.key.want). */
  atRestWanted(): boolean {
    return existsSync(wantPath(this.atRestPath)) && !existsSync(this.atRestPath);
  }

  giveAtRest(key: Uint8Array): void {
    this.prepare();
    const line = hexLine(key);
    try {
      writeKeyFile(this.atRestPath, line);
    } finally {
      line.fill(0);
    }
  }

  /** The vault's state for membershipd's /healthz; only when the directory is there already. */
  writeState(info: VaultInfo): void {
    if (!existsSync(this.dir)) return;
    const path = vaultStatePath(this.atRestPath);
    const tmp = `${path}.${process.pid}.tmp`;
    const shown = {
      state: info.state,
      reachable: info.reachable,
      k: info.k,
      n: info.n,
      next_retry_ms: info.next_retry_ms,
      problem: info.problem,
      at: new Date().toISOString(),
    };
    writeFileSync(tmp, JSON.stringify(shown) + "\n", { mode: 0o600 });
    renameSync(tmp, path);
  }

  /** Wipes one service's key file (its LUKS device would not open: it must not start half-ready). */
  removeService(name: string): void {
    wipeFile(this.servicePath(name));
    this.given.delete(name);
  }

  /** Wipes the services' key files (they are stopped first). */
  removeServices(): void {
    const dir = join(this.dir, "services");
    if (existsSync(dir)) for (const f of readdirSync(dir)) wipeFile(join(dir, f));
    this.given.clear();
  }

  /** Wipes every file and removes the directory: the agent stops, leaves or was revoked. */
  removeAll(): void {
    this.removeServices();
    if (!existsSync(this.dir)) return;
    rmdirIfThere(join(this.dir, "services"));
    for (const f of readdirSync(this.dir)) wipeFile(join(this.dir, f));
    rmdirIfThere(this.dir);
  }
}

function rmdirIfThere(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // gone already, or membershipd put a file in it since: left for it
  }
}
