// The owner's side of the vault, in `unibus-agent run`. A vault-mode node (it has vault.json)
// rebuilds its data key at boot from K+1 of its guardians (K when only K answer), checks it
// against the commitment on its own disk, reports any guardian whose share does not fit
// (ShareMismatch) and opens its secret store with the key; then the key is zeroed. With too few
// guardians it waits ("waiting-for-peers" in status) and tries again after 1, 2, 4, 8, 16 s (and
// round again, forever, jittered). Once unlocked it checks every `checkIntervalMs` whether its
// guardians are still all active and K still fits N, and if not rebuilds the key once more and
// redistributes it under the next epoch (a reshare: same key, fresh polynomial).
//
// Genesis: while the fleet has fewer than 5 nodes there are too few peers to hold the key, so with
// an operator key (`genesisKey`: an X25519 curve nkey, or the spec of one derived from a
// passphrase) a new vault keeps its key sealed to the operator in genesis.key instead. At boot such a node is "genesis-locked" until the operator runs
// `unibus node unlock --genesis <node>`, which opens the key and sends it back (the signed `unlock`
// command) sealed to a one-boot ephemeral key this node shows in its status and never writes down. From then on it keeps the key in memory (the one exception to
// "zeroed after use": nobody else could give it back) until the fifth node is there, distributes it
// with GenesisHandover, deletes genesis.key and zeroes it; from then on it unlocks from its peers.
import { randomInt } from "node:crypto";
import {
  PlanResult,
  Reply,
  SHARE_ACTION,
  ShareReleaseResult,
  nodeActorId,
  vaultShareSubject,
  type Commitment,
  type PlanResult as Plan,
  type VaultInfo,
} from "../../../schemas/mod.ts";
import {
  commitTo,
  curvePublicRaw,
  ephemeralPair,
  fitsCommitment,
  newDataKey,
  openSealed,
  parseGenesisKey,
  rebuild,
  sealTo,
  signCommand,
  splitKey,
  thresholdFor,
  toBase64Url,
  zeroShares,
  type Share,
  type Signer,
  systemInputs,
} from "../../core/mod.ts";
import { VaultDisk, type Secrets } from "./local.ts";
import { unlockBackoff } from "./pacing.ts";
import { needsReshare } from "./reshare.ts";
import type { Codes } from "../../core/mod.ts";

export class VaultError extends Error {
  constructor(
    readonly code: Codes<"E_TOO_FEW_PEERS" | "E_SHARE_MISMATCH" | "E_VAULT_LOCKED" | "E_UNAVAILABLE" | "E_EPOCH">,
    message: string,
  ) {
    super(message);
  }
}

export interface OwnerVaultOptions {
  node: string;
  dir: string;
  signer: Signer;
  /** A signed request to membershipd as this node. */
  ask(action: string, args: Record<string, unknown>): Promise<Reply>;
  /** A raw request/reply on NATS (the guardians' subjects); rejects on timeout or no responders. */
  request(subject: string, payload: string, timeoutMs: number): Promise<unknown>;
  log: (line: string) => void;
  /** The backoff's unit: 1 s in production (1, 2, 4, 8, 16 s). */
  backoffUnitMs?: number;
  checkIntervalMs?: number;
  /** The cluster's K, if it sets one (clamped to [2, N]). */
  threshold?: number | null;
  /** Peers a first distribution needs (4: the fleet has 5 nodes). */
  minGuardians?: number;
  guardianTimeoutMs?: number;
  /** What a new vault's secret store starts with. */
  initialSecrets?: Secrets;
  /** Hears each change of state (the agent reports it as VaultStateChanged). */
  onState?: (info: VaultInfo) => void;
  /** The operator's genesis key (a curve nkey X…, or a passphrase's scrypt:…:X… spec): allows a genesis vault while the fleet is too small. */
  genesisKey?: string | null;
  /** Hears the key each time it is in hand at an unlock (handoff.ts writes it for its consumers); it must not keep it. */
  onKey?: (key: Uint8Array) => Promise<void> | void;
  /** adopt.ts: the key a new vault takes instead of a fresh one (an existing at-rest key). */
  adoptKey?: () => Uint8Array;
}

export interface Attempt {
  reachable: number;
  asked: number;
  bad: string[];
}

function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export class OwnerVault {
  readonly disk: VaultDisk;
  private status: VaultInfo = {
    state: "off",
    epoch: 0,
    k: 0,
    n: 0,
    reachable: 0,
    attempts: 0,
    next_retry_ms: null,
    mismatches: [],
    problem: null,
  };
  private unlockedSecrets: Secrets | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private checking: Promise<boolean> | null = null;
  /** Genesis only: the key, held until the handover. */
  private heldKey: Uint8Array | null = null;
  private genesisUnlocked: (() => void) | null = null;
  private genesisEph: Awaited<ReturnType<typeof ephemeralPair>> | null = null;

  constructor(private readonly o: OwnerVaultOptions) {
    this.disk = new VaultDisk(o.dir);
    if (this.disk.exists()) this.status = { ...this.status, state: "locked" };
  }

  info(): VaultInfo {
    return { ...this.status, mismatches: [...this.status.mismatches] };
  }

  private reported: VaultInfo["state"] | null = null;

  /** The status changes here; a new state (not each attempt in between) is told to onState. */
  private set(next: Partial<VaultInfo>): void {
    this.status = { ...this.status, ...next };
    const s = this.status.state;
    if (s !== "unlocking" && s !== this.reported) {
      this.reported = s;
      this.o.onState?.(this.info());
    }
  }

  /** The secret store once unlocked (its consumer's view); null while locked. */
  secrets(): Secrets | null {
    return this.unlockedSecrets;
  }

  /** Runs until unlocked (creating the vault first when `create` and there is none yet), then keeps checking for reshares. */
  start(create: boolean): void {
    if (!create && !this.disk.exists()) return;
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop?.catch(() => {});
    await this.checking?.catch(() => {});
    this.unlockedSecrets = null;
    this.heldKey?.fill(0);
    this.heldKey = null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
      this.timer = setTimeout(r, ms);
    });
  }

  private async run(): Promise<void> {
    const backoff = unlockBackoff(this.o.backoffUnitMs ?? 1000);
    while (!this.stopped) {
      this.set({ state: "unlocking", attempts: this.status.attempts + 1, next_retry_ms: null });
      try {
        if (this.disk.exists() && this.disk.read().genesis) await this.genesisBoot();
        else if (this.disk.exists()) await this.unlockAtBoot();
        else await this.create();
        if (this.stopped) return;
        this.set({ state: "unlocked", problem: null });
        break;
      } catch (err) {
        if (this.stopped) return;
        const wait = backoff.next();
        this.set({ state: "waiting-for-peers", next_retry_ms: wait, problem: (err as Error).message });
        this.o.log(`vault: ${(err as Error).message}; waiting for peers, next try in ${wait} ms`);
        await this.sleep(wait);
      }
    }
    while (!this.stopped) {
      await this.sleep(this.o.checkIntervalMs ?? 30_000);
      if (this.stopped) return;
      await this.checkReshare().catch((err) => this.o.log(`vault: reshare check failed: ${(err as Error).message}`));
    }
  }

  private async plan(): Promise<Plan> {
    const r = await this.o.ask("vault.plan", { owner: this.o.node });
    if (!r.ok) throw new VaultError("E_UNAVAILABLE", `membershipd refused vault.plan: ${r.error.message}`);
    return PlanResult.parse(r.result);
  }

  private minPeers(): number {
    return Math.max(2, this.o.minGuardians ?? 4);
  }

  /** A first vault: a new key, the secret store under it, shares to every active peer, vault.json. */
  private async create(): Promise<void> {
    const plan = await this.plan();
    const min = this.minPeers();
    if (plan.peers.length < min && this.o.genesisKey && !plan.distribution) return await this.createGenesis();
    if (plan.peers.length < min)
      throw new VaultError("E_TOO_FEW_PEERS", `${plan.peers.length} peers can guard this node's key; it needs ${min}`);
    if (plan.distribution)
      throw new VaultError(
        "E_EPOCH",
        `membershipd already holds a distribution of ${this.o.node}'s key (epoch ${plan.distribution.epoch}) but this node has no vault.json`,
      );
    const key = this.o.adoptKey?.() ?? newDataKey();
    try {
      const commitment = commitTo(key, this.o.node);
      await this.disk.writeStore(key, this.o.node, this.o.initialSecrets ?? {});
      await this.distribute(key, plan, commitment);
      this.disk.write({ v: 1, owner: this.o.node, commitment, created_at: new Date().toISOString(), genesis: false });
      this.unlockedSecrets = await this.disk.openStore(key, this.o.node);
      await this.o.onKey?.(key);
      this.o.log(`vault: ${this.o.node}'s data key is split among ${plan.peers.length} peers`);
    } finally {
      key.fill(0);
    }
  }

  private async createGenesis(): Promise<void> {
    const spec = parseGenesisKey(this.o.genesisKey!);
    if (!spec)
      throw new VaultError(
        "E_VAULT_LOCKED",
        "the genesis key is neither a curve public key (X…) nor a scrypt:…:X… spec",
      );
    const key = this.o.adoptKey?.() ?? newDataKey();
    const commitment = commitTo(key, this.o.node);
    await this.disk.writeStore(key, this.o.node, this.o.initialSecrets ?? {});
    this.disk.writeGenesis({
      v: 1,
      operator: spec.operator,
      kdf: spec.kdf,
      sealed: await sealTo(curvePublicRaw(spec.operator), key),
    });
    this.disk.write({ v: 1, owner: this.o.node, commitment, created_at: new Date().toISOString(), genesis: true });
    this.unlockedSecrets = await this.disk.openStore(key, this.o.node);
    this.heldKey = key;
    await this.o.onKey?.(key);
    this.o.log(
      `vault: genesis: ${this.o.node}'s data key is kept under the operator's key until the fleet has ${this.minPeers() + 1} nodes`,
    );
  }

  /** A genesis vault at boot: handed over already (finish it), or wait for the operator's unlock. */
  private async genesisBoot(): Promise<void> {
    const plan = await this.plan();
    if (plan.distribution) {
      // The handover's SharesDistributed is in the stream but the files were not updated: finish it.
      this.finishHandover();
      return await this.unlockAtBoot();
    }
    if (this.heldKey) return;
    this.genesisEph ??= await ephemeralPair();
    const genesis = this.disk.readGenesis();
    this.set({
      state: "genesis-locked",
      genesis_sealed: genesis.sealed,
      genesis_ephemeral: toBase64Url(this.genesisEph.publicKey),
      genesis_operator: genesis.operator,
      genesis_kdf: genesis.kdf,
      problem: "waiting for unibus node unlock --genesis",
    });
    this.o.log(`vault: genesis-locked; an operator unlocks it with: unibus node unlock --genesis ${this.o.node}`);
    await new Promise<void>((r) => (this.genesisUnlocked = r));
  }

  /** The operator's `unlock`: the key sealed to this node; it must fit the commitment and open the store. */
  async unlockGenesis(
    sealed: string,
  ): Promise<{ ok: true; result: VaultInfo } | { ok: false; error: { code: string; message: string } }> {
    const eph = this.genesisEph;
    if (this.status.state !== "genesis-locked" || !eph)
      return {
        ok: false,
        error: {
          code: "E_BAD_REQUEST",
          message: `${this.o.node}'s vault is ${this.status.state}, not waiting for a genesis unlock`,
        },
      };
    const key = await openSealed(sealed, eph);
    const { commitment } = this.disk.read();
    if (!key || !fitsCommitment(key, this.o.node, commitment)) {
      key?.fill(0);
      return {
        ok: false,
        error: {
          code: "E_SHARE_MISMATCH",
          message: `that is not ${this.o.node}'s data key (it does not fit the commitment)`,
        },
      };
    }
    const secrets = await this.disk.openStore(key, this.o.node);
    if (!secrets) {
      key.fill(0);
      return {
        ok: false,
        error: { code: "E_SHARE_MISMATCH", message: "the key fits the commitment but does not open secrets.enc" },
      };
    }
    this.unlockedSecrets = secrets;
    this.heldKey = key;
    await this.o.onKey?.(key);
    eph.secretKey.fill(0);
    this.genesisEph = null;
    this.set({
      state: "unlocked",
      genesis_sealed: null,
      genesis_ephemeral: null,
      genesis_operator: null,
      genesis_kdf: null,
      problem: null,
    });
    this.genesisUnlocked?.();
    this.o.log("vault: unlocked by the operator (genesis)");
    return { ok: true, result: this.info() };
  }

  private finishHandover(): void {
    this.disk.write({ ...this.disk.read(), genesis: false });
    this.disk.deleteGenesis();
    this.heldKey?.fill(0);
    this.heldKey = null;
    this.status = { ...this.status, genesis_sealed: null };
  }

  private async unlockAtBoot(): Promise<void> {
    await this.withKey(async (key, plan) => {
      const secrets = await this.disk.openStore(key, this.o.node);
      if (!secrets)
        throw new VaultError("E_SHARE_MISMATCH", "the rebuilt key fits the commitment but does not open secrets.enc");
      this.unlockedSecrets = secrets;
      await this.o.onKey?.(key);
      if (this.needsReshare(plan)) await this.distribute(key, plan, this.disk.read().commitment);
    });
    this.o.log(`vault: unlocked from ${this.status.reachable} guardians (epoch ${this.status.epoch})`);
  }

  /** The key once more for `use` (the one held in genesis, else rebuilt from the guardians), zeroed after. */
  async useKey<T>(use: (key: Uint8Array) => Promise<T>): Promise<T> {
    if (this.status.state !== "unlocked")
      throw new VaultError("E_VAULT_LOCKED", `${this.o.node}'s vault is ${this.status.state}`);
    if (this.heldKey) return await use(this.heldKey);
    return await this.withKey((key) => use(key));
  }

  /** Whether the guardians are not all active any more, or N's K is not the distribution's. */
  needsReshare(plan: Plan): boolean {
    return needsReshare(plan, this.o.threshold);
  }

  /** Reshares when needed (true when it did). */
  checkReshare(): Promise<boolean> {
    this.checking ??= (async () => {
      try {
        const plan = await this.plan();
        if (this.heldKey && this.disk.read().genesis) {
          if (plan.peers.length < this.minPeers()) return false;
          await this.distribute(this.heldKey, plan, this.disk.read().commitment, true);
          this.finishHandover();
          this.o.log(`vault: genesis handed over: ${this.o.node}'s key is now held by ${plan.peers.length} peers`);
          return true;
        }
        if (!this.needsReshare(plan)) return false;
        await this.withKey((key, fresh) => this.distribute(key, fresh, this.disk.read().commitment));
        return true;
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }

  private async distribute(
    key: Uint8Array,
    plan: Plan,
    commitment: Commitment,
    genesisHandover = false,
  ): Promise<void> {
    const n = plan.peers.length;
    const k = thresholdFor(n, this.o.threshold);
    const shares = await splitKey(key, n, k);
    let sealed: { guardian: string; sealed: string }[];
    try {
      sealed = await Promise.all(
        plan.peers.map(async (p, i) => ({
          guardian: p.node,
          sealed: await sealTo(curvePublicRaw(p.kex_key), shares[i]!),
        })),
      );
    } finally {
      for (const s of shares) s.fill(0);
    }
    const epoch = (plan.distribution?.epoch ?? 0) + 1;
    const r = await this.o.ask("vault.distribute", {
      owner: this.o.node,
      epoch,
      k,
      commitment,
      shares: sealed,
      genesis_handover: genesisHandover,
    });
    if (!r.ok)
      throw new VaultError(
        r.error.code === "E_EPOCH" ? "E_EPOCH" : "E_UNAVAILABLE",
        `membershipd refused the distribution: ${r.error.message}`,
      );
    this.status = { ...this.status, epoch, k, n };
    this.o.log(`vault: ${this.o.node}'s key distributed to ${n} guardians, K=${k}, epoch ${epoch}`);
  }

  /** One guardian's share, opened with the ephemeral key; null when it refused, was silent or sent junk. */
  private async askGuardian(
    guardian: string,
    epoch: number,
    eph: Awaited<ReturnType<typeof ephemeralPair>>,
  ): Promise<Share | null> {
    const cmd = signCommand(
      {
        action: SHARE_ACTION,
        args: { owner: this.o.node, guardian, epoch, ephemeral: toBase64Url(eph.publicKey) },
        actor: { id: nodeActorId(this.o.node), key: this.o.signer.publicKey },
      },
      this.o.signer,
      systemInputs,
    );
    try {
      const reply = Reply.parse(
        await this.o.request(vaultShareSubject(guardian), JSON.stringify(cmd), this.o.guardianTimeoutMs ?? 2000),
      );
      if (!reply.ok) {
        this.o.log(`vault: guardian ${guardian} refused: ${reply.error.code} ${reply.error.message}`);
        return null;
      }
      const r = ShareReleaseResult.parse(reply.result);
      if (r.guardian !== guardian || r.epoch !== epoch) return null;
      const share = await openSealed(r.sealed, eph);
      return share ? { guardian, share } : null;
    } catch (err) {
      this.o.log(`vault: guardian ${guardian} did not answer (${(err as Error).message})`);
      return null;
    }
  }

  /**
   * Fetches shares (K+1 when it can), rebuilds and checks the key, reports bad shares, runs `use`
   * with it and zeroes it. Throws VaultError when the key cannot be rebuilt now.
   */
  async withKey<T>(use: (key: Uint8Array, plan: Plan) => Promise<T>): Promise<T> {
    const plan = await this.plan();
    const d = plan.distribution;
    if (!d) throw new VaultError("E_VAULT_LOCKED", `membershipd holds no distribution of ${this.o.node}'s key`);
    const { commitment } = this.disk.read();
    this.status = { ...this.status, epoch: d.epoch, k: d.k, n: d.guardians.length };
    const order = shuffled(d.guardians);
    const eph = await ephemeralPair();
    const got: Share[] = [];
    let asked = 0;
    try {
      const fetchMore = async (want: number) => {
        while (got.length < want && asked < order.length) {
          const batch = order.slice(asked, asked + (want - got.length));
          asked += batch.length;
          for (const s of await Promise.all(batch.map((g) => this.askGuardian(g, d.epoch, eph)))) if (s) got.push(s);
        }
      };
      await fetchMore(Math.min(d.k + 1, order.length));
      let r = await rebuild(got, d.k, this.o.node, commitment);
      if (!r.ok && r.error.code === "E_SHARE_MISMATCH" && asked < order.length) {
        await fetchMore(order.length);
        r = await rebuild(got, d.k, this.o.node, commitment);
      }
      this.status = { ...this.status, reachable: got.length };
      if (!r.ok)
        throw new VaultError(
          r.error.code,
          r.error.code === "E_TOO_FEW_PEERS"
            ? `${got.length} of ${d.guardians.length} guardians released a share; ${d.k} are needed`
            : r.error.message,
        );
      for (const g of r.value.bad) {
        this.o.log(`vault: guardian ${g} returned a share that does not fit the key's commitment`);
        const m = await this.o.ask("vault.mismatch", { owner: this.o.node, guardian: g, epoch: d.epoch });
        if (!m.ok) this.o.log(`vault: could not report ${g}'s mismatch: ${m.error.message}`);
      }
      this.status = { ...this.status, mismatches: [...new Set([...this.status.mismatches, ...r.value.bad])] };
      try {
        return await use(r.value.key, plan);
      } finally {
        r.value.key.fill(0);
      }
    } finally {
      zeroShares(got);
      eph.secretKey.fill(0);
    }
  }
}
