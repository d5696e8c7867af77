// The agent's data dir: its keys (created here, never sent anywhere), and once enrolled its
// credentials, the pinned CA and what membershipd told it. Seeds and creds are 0600 files.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCurve, fromCurveSeed } from "@nats-io/nkeys";
import { NodeConfig } from "../../schemas/mod.ts";
import { credsFor, readSecretFile, replaceSecretFile, writeSecretFile } from "../bus/mod.ts";
import {
  newUserSeed,
  newWgPrivateKey,
  parseWgKeyFile,
  signerFromSeed,
  wgKeyFileText,
  wgPublicKeyOf,
  type Signer,
} from "../core/mod.ts";

export const FILES = {
  sign: "node.nk",
  kex: "kex.nk",
  creds: "node.creds",
  ca: "ca.pem",
  config: "node.json",
  /** The WireGuard private key, as `wg genkey` writes it (base64, 0600): `wg set … private-key` reads it. */
  wg: "wg.key",
  /** A rotation's new key, until membershipd has recorded its public key (then it becomes wg.key). */
  wgNext: "wg.key.next",
} as const;

export interface NodeKeys {
  signer: Signer;
  kexPublicKey: string;
}

export class NodeStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(name: keyof typeof FILES): string {
    return join(this.dir, FILES[name]);
  }

  enrolled(): NodeConfig | null {
    if (!existsSync(this.path("config")) || !existsSync(this.path("creds"))) return null;
    const r = NodeConfig.safeParse(JSON.parse(readFileSync(this.path("config"), "utf8")));
    return r.success ? r.data : null;
  }

  /**
   * The node's signing and key-exchange keys, made on first use. A join that failed after the
   * keys were made reuses them, so membershipd recognises the retry.
   */
  keys(): NodeKeys {
    if (!existsSync(this.path("sign"))) {
      const seed = newUserSeed();
      writeSecretFile(this.path("sign"), Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
      seed.fill(0);
    }
    if (!existsSync(this.path("kex"))) {
      const seed = createCurve().getSeed();
      writeSecretFile(this.path("kex"), Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
      seed.fill(0);
    }
    return { signer: this.loadSigner(), kexPublicKey: this.loadKexPublicKey() };
  }

  /**
   * The node's WireGuard public key; its private key is made on first use and stays in `wg.key`
   * (0600). A join retried after a failure reuses it, like the node's other keys.
   */
  wgPublicKey(which: "wg" | "wgNext" = "wg"): string {
    if (which === "wg" && !existsSync(this.path("wg"))) this.newWgKey("wg");
    const file = readSecretFile(this.path(which));
    const raw = parseWgKeyFile(file);
    file.fill(0);
    if (!raw) throw new Error(`${this.path(which)} does not hold one WireGuard private key (base64 of 32 bytes)`);
    try {
      return wgPublicKeyOf(raw);
    } finally {
      raw.fill(0);
    }
  }

  /** A new WireGuard private key in `which` (0600), replacing what is there; its public key. */
  newWgKey(which: "wg" | "wgNext"): string {
    const raw = newWgPrivateKey();
    const text = wgKeyFileText(raw);
    try {
      replaceSecretFile(this.path(which), text);
      return wgPublicKeyOf(raw);
    } finally {
      raw.fill(0);
      text.fill(0);
    }
  }

  /**
   * A rotation's new key becomes wg.key once membershipd holds its public key (`recorded`): a
   * rotation cut short after membershipd took it finishes here. Otherwise, with `removeStale`
   * (`wg update` starting), a leftover wg.key.next (its update never landed) is removed. True when
   * wg.key changed.
   */
  settleWgRotation(recorded: string, removeStale: boolean): boolean {
    if (!existsSync(this.path("wgNext"))) return false;
    let next: string | null = null;
    try {
      next = this.wgPublicKey("wgNext");
    } catch {
      // A damaged leftover is of no use: removed below.
    }
    if (next === recorded) {
      renameSync(this.path("wgNext"), this.path("wg"));
      return true;
    }
    // The daemon never removes it: a `wg update` may have sent its key and be waiting for the answer.
    if (removeStale) rmSync(this.path("wgNext"), { force: true });
    return false;
  }

  private seed(name: "sign" | "kex"): Uint8Array {
    const buf = readSecretFile(this.path(name));
    const seed = new Uint8Array(buf).slice(0, buf.toString("utf8").trimEnd().length);
    buf.fill(0);
    return seed;
  }

  private loadSigner(): Signer {
    const seed = this.seed("sign");
    try {
      return signerFromSeed(seed);
    } finally {
      seed.fill(0);
    }
  }

  private loadKexPublicKey(): string {
    const seed = this.seed("kex");
    const kp = fromCurveSeed(seed);
    const key = kp.getPublicKey();
    kp.clear();
    seed.fill(0);
    return key;
  }

  /** Writes the pinned CA first, then the creds, then the config: the config marks "enrolled". */
  saveEnrollment(config: NodeConfig, caPem: string): void {
    writeFileSync(this.path("ca"), caPem, { mode: 0o644 });
    const seed = this.seed("sign");
    try {
      replaceSecretFile(this.path("creds"), credsFor(config.jwt, seed));
    } finally {
      seed.fill(0);
    }
    writeFileSync(this.path("config"), JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  }

  /**
   * Replaces the creds file's JWT with `jwt` (minted again for this node's key): tmp file and
   * rename, so a crash leaves the old file or the new one, never half of one.
   */
  replaceJwt(jwt: string): void {
    const seed = this.seed("sign");
    let creds: Uint8Array | null = null;
    try {
      creds = credsFor(jwt, seed);
      replaceSecretFile(this.path("creds"), creds);
    } finally {
      seed.fill(0);
      creds?.fill(0);
    }
  }

  creds(): Uint8Array {
    return new Uint8Array(readSecretFile(this.path("creds")));
  }

  /** The X25519 (curve nkey) seed, for the vault's sealed boxes; the caller zeroes it after use. */
  kexSeed(): Uint8Array {
    return this.seed("kex");
  }
}
