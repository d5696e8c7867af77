// Who gets a vault-mode node's data key once it is unlocked, and when they lose it. At each unlock
// (OwnerVault's onKey) the services that declare `data_key` get their key files (handoff.ts),
// their LUKS devices are opened (luks.ts) and then they are started; membershipd gets its
// JetStream key whenever it asks (at-rest.key.want), from the key held in genesis or rebuilt from
// the guardians once more. When the agent stops, leaves or is revoked, the key services are
// stopped, their devices closed and every hand-off file wiped.
import { existsSync } from "node:fs";
import type { ServiceConfig, VaultInfo } from "../../../schemas/mod.ts";
import { serviceIdentity, type Supervisor } from "../supervisor/mod.ts";
import { KeyHandoff } from "./handoff.ts";
import { closeLuks, openLuks } from "./luks.ts";
import type { OwnerVault } from "./owner.ts";

export interface KeyConsumersOptions {
  handoff: KeyHandoff;
  allowLuks: boolean;
  log: (line: string) => void;
  /** How often membershipd's request is looked for (ms). */
  pollMs?: number;
}

export class KeyConsumers {
  private supervisor: Supervisor | null = null;
  private vault: OwnerVault | null = null;
  private timer: NodeJS.Timeout | null = null;
  private giving: Promise<void> | null = null;
  private active = false;

  constructor(private readonly o: KeyConsumersOptions) {}

  /** What the supervisor's sandboxes need to know. */
  sandboxView() {
    const h = this.o.handoff;
    return { dir: h.dir, exists: () => existsSync(h.dir), file: (service: string) => h.serviceKeyFile(service) };
  }

  /**
   * Vault mode, before any service starts: the runtime directory is made and checked, so that
   * every sandbox hides it from the first start on.
   */
  prepare(): void {
    try {
      this.o.handoff.prepare();
      this.active = true;
    } catch (err) {
      this.o.log(
        `vault: ${(err as Error).message}; no key is handed to services or membershipd [${(err as { code?: string }).code}]`,
      );
    }
  }

  /** Then, with the vault: answers membershipd's requests. */
  start(supervisor: Supervisor, vault: OwnerVault): void {
    this.supervisor = supervisor;
    this.vault = vault;
    if (!this.active) return;
    this.timer = setInterval(() => this.answerMembershipd(), this.o.pollMs ?? 500);
    this.timer.unref();
  }

  private consumers(): ServiceConfig[] {
    return this.supervisor?.keyConsumers() ?? [];
  }

  /** OwnerVault's onKey: never throws (a failed hand-off must not read as a failed unlock). */
  async onKey(key: Uint8Array): Promise<void> {
    if (!this.active) return;
    try {
      const consumers = this.consumers();
      this.o.handoff.giveServices(
        key,
        consumers.map((c) => ({ name: c.name, ...serviceIdentity(c) })),
      );
      for (const c of consumers.filter((c) => c.luks)) {
        const r = await openLuks(c.luks!, key, { allowed: this.o.allowLuks });
        if (!r.ok) {
          this.o.log(`vault: ${c.name}: ${r.error.message} [${r.error.code}]`);
          this.o.handoff.removeService(c.name);
        }
      }
      if (this.o.handoff.atRestWanted()) this.giveAtRest(key);
    } catch (err) {
      this.o.log(`vault: the key could not be handed over: ${(err as Error).message}`);
      return;
    }
    // After onKey returns: the vault marks itself unlocked first, and a slow start holds nothing up.
    setImmediate(() => void this.startConsumers());
  }

  private async startConsumers(): Promise<void> {
    for (const c of this.consumers()) {
      if (!this.o.handoff.serviceKeyFile(c.name)) continue;
      const r = await this.supervisor!.start(c.name);
      if (!r.ok) this.o.log(`vault: ${c.name} did not start: ${r.error.message}`);
    }
  }

  private giveAtRest(key: Uint8Array): void {
    this.o.handoff.giveAtRest(key);
    this.o.log(`vault: membershipd's JetStream key handed over in ${this.o.handoff.atRestPath}`);
  }

  /** membershipd asked (it restarted, or it started after the unlock): the key once more. */
  private answerMembershipd(): void {
    if (this.giving || !this.vault || this.vault.info().state !== "unlocked" || !this.o.handoff.atRestWanted()) return;
    this.giving = this.vault
      .useKey(async (key) => this.giveAtRest(key))
      .catch((err) => this.o.log(`vault: could not hand membershipd its key: ${(err as Error).message}`))
      .finally(() => (this.giving = null));
  }

  onState(info: VaultInfo): void {
    if (!this.active) return;
    try {
      this.o.handoff.writeState(info);
    } catch (err) {
      this.o.log(`vault: could not write ${this.o.handoff.dir}/vault-state.json: ${(err as Error).message}`);
    }
  }

  /** The node is revoked (its credentials were cut): the key services stop, their key is gone. */
  async revoke(): Promise<void> {
    for (const c of [...this.consumers()].reverse()) await this.supervisor?.stop(c.name);
    await this.stop();
  }

  /** The agent stops (its services are stopped already): devices closed, every file wiped. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.giving;
    for (const c of this.consumers()) if (c.luks) await closeLuks(c.luks).catch(() => {});
    if (this.active) this.o.handoff.removeAll();
    this.active = false;
  }
}
