// Where an unlocked data key goes on its own host: a runtime directory in memory
// ($UNIBUS_KEY_RUNTIME_DIR, default /run/unibus/<node>/, refused unless tmpfs or ramfs; see
// services/bus/key-handoff.ts) with
//   services/<name>.key  one copy per service that declares `data_key`, 0600 and (agent as root)
//                        owned by the service's UID; bound read-only into its sandbox. services/
//                        is the agent's own (0700), which membershipd never reads
//   at-rest.key          membershipd's JetStream key, written only while membershipd asks for it
//                        (at-rest.key.want) and taken (wiped, unlinked) by membershipd at once
//   vault-state.json     the vault's state (no secret): membershipd's /healthz shows it while it waits
// A root agent shares the directory with membershipd's user (prepareSharedKeyDir): the directory
// and the two files membershipd reads are that user's, and since that user may rename or plant
// anything in it, the agent reaches its files only through a descriptor of the directory it checked.
// Every file is wiped (zeros, then unlinked) when the agent stops, leaves or is revoked. Key bytes
// are written from buffers that are zeroed after; the key is never a JS string here.
import {
  closeSync,
  existsSync,
  fchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, join } from "node:path";
import type { VaultInfo } from "../../../schemas/mod.ts";
import {
  KeyHandoffError,
  type KeyFileOwner,
  prepareSharedKeyDir,
  wantPath,
  vaultStatePath,
  wipeFile,
  withKeyDir,
  writeKeyFile,
} from "../../bus/mod.ts";

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
  /** Who owns the directory and membershipd's files (its user, to a root agent); null: this process. */
  private owner: KeyFileOwner | null = null;

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

  /** Checks the directory (ours or, to a root agent, membershipd's; 0700; in memory); throws KeyHandoffError. */
  prepare(): void {
    this.owner = prepareSharedKeyDir(this.dir);
  }

  private owners(): number[] {
    const self = process.getuid?.() ?? 0;
    return this.owner ? [self, this.owner.uid] : [self];
  }

  /** `use` in the checked directory (see withKeyDir); run after prepare(). */
  private inDir<T>(use: (at: string) => T): T {
    return withKeyDir(this.dir, this.owners(), (at) => use(at));
  }

  /** `use` in services/, which is this process's alone (made here when `make`); null when it is not there. */
  private inServices<T>(make: boolean, use: (at: string) => T): T | null {
    return this.inDir((at) => {
      const dir = join(at, "services");
      if (make && !existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
      if (!existsSync(dir)) return null;
      return withKeyDir(dir, [process.getuid?.() ?? 0], use);
    });
  }

  /** One key file per consumer. */
  giveServices(key: Uint8Array, consumers: readonly KeyConsumer[]): void {
    if (consumers.length === 0) return;
    this.prepare();
    const line = hexLine(key);
    try {
      this.inServices(true, (at) => {
        for (const c of consumers) {
          writeKeyFile(join(at, `${c.name}.key`), line, this.root ? { uid: c.uid, gid: c.gid } : undefined);
          this.given.add(c.name);
        }
      });
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
      this.inDir((at) => writeKeyFile(join(at, "at-rest.key"), line, this.owner ?? undefined));
    } finally {
      line.fill(0);
    }
  }

  /** The vault's state for membershipd's /healthz; only when the directory is there already. */
  writeState(info: VaultInfo): void {
    if (!existsSync(this.dir)) return;
    this.prepare();
    const shown = {
      state: info.state,
      reachable: info.reachable,
      k: info.k,
      n: info.n,
      next_retry_ms: info.next_retry_ms,
      problem: info.problem,
      at: new Date().toISOString(),
    };
    this.inDir((at) => {
      const path = join(at, basename(vaultStatePath(this.atRestPath)));
      const tmp = `${path}.${process.pid}.tmp`;
      // A new file (never one planted under that name), membershipd's own so that it can read it.
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, "wx", 0o600);
      try {
        writeSync(fd, JSON.stringify(shown) + "\n");
        if (this.owner) fchownSync(fd, this.owner.uid, this.owner.gid);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    });
  }

  /** Wipes one service's key file (its LUKS device would not open: it must not start half-ready). */
  removeService(name: string): void {
    wipingSafely(() => this.inServices(false, (at) => wipeFile(join(at, `${name}.key`))));
    this.given.delete(name);
  }

  /** Wipes the services' key files (they are stopped first). */
  removeServices(): void {
    wipingSafely(() =>
      this.inServices(false, (at) => {
        for (const f of readdirSync(at)) wipeFile(join(at, f));
      }),
    );
    this.given.clear();
  }

  /** Wipes every file and removes the directory: the agent stops, leaves or was revoked. */
  removeAll(): void {
    this.removeServices();
    wipingSafely(() =>
      this.inDir((at) => {
        rmdirIfThere(join(at, "services"));
        for (const f of readdirSync(at, { withFileTypes: true })) if (!f.isDirectory()) wipeFile(join(at, f.name));
      }),
    );
    rmdirIfThere(this.dir);
  }
}

/**
 * Wiping goes as far as it safely can: a directory that is gone, or not what was checked (another
 * user renamed it or planted a symlink in its place), is left alone rather than followed.
 */
function wipingSafely(wipe: () => void): void {
  try {
    wipe();
  } catch (err) {
    if (!(err instanceof KeyHandoffError) && (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

function rmdirIfThere(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // gone already, or membershipd put a file in it since: left for it
  }
}
