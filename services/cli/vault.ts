// `unibus vault status`: every vault-mode node's distribution as membershipd records it (K, N,
// epoch, its guardians and how many are active, mismatches reported) beside what the node's own
// agent says of its unlock (state, guardians that released a share at its last attempt), asked
// in parallel with the agent `status` command (2 s each; a silent agent shows "no answer").
import type { NatsConnection } from "@nats-io/transport-node";
import { AgentInfo, VaultStatusRow, type VaultInfo } from "../../schemas/mod.ts";
import { agentLink, answerError, askAgent } from "./agent-request.ts";
import { readSecretFile } from "../bus/mod.ts";
import { fromBase64Url, kexPairFromSeed, openSealed, sealTo } from "../core/mod.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN } from "./dry-run.ts";
import { mapLimited } from "./limited.ts";
import { CliError, EXIT, need, print, table, usageError } from "./output.ts";
import type { Send } from "./main.ts";

export interface VaultStatusLine extends VaultStatusRow {
  unlock: VaultInfo["state"] | "no answer";
  reachable: number | null;
  problem: string | null;
}

export async function vaultStatus(o: GlobalOptions, send: Send, connection: () => Promise<NatsConnection>, timeoutMs = 2000): Promise<number> {
  const listed = await send("vault.status", {});
  if (listed === DRY_RUN) return EXIT.ok;
  const rows = (listed.items as unknown[]).map((r) => VaultStatusRow.parse(r));
  const link = await agentLink(o, connection);
  const lines: VaultStatusLine[] = await mapLimited(rows, 32, async (r) => {
    const a = await askAgent(link, r.owner, "status", { node: r.owner }, timeoutMs);
    const vault = a.kind === "ok" ? AgentInfo.shape.vault.safeParse((a.result as { agent?: { vault?: unknown } }).agent?.vault).data : undefined;
    return { ...r, unlock: vault?.state ?? "no answer", reachable: vault?.reachable ?? null, problem: vault?.problem ?? (a.kind === "ok" ? null : a.kind) };
  });
  print(o.json, { items: lines, total: listed.total }, () => lines.length === 0 ? "no node keeps its key in the vault" : table(lines.map((l) => ({
    node: l.owner, k: l.k, n: l.n, epoch: l.epoch, guardians: `${l.active_guardians}/${l.n} active`, reachable: l.reachable === null ? "-" : `${l.reachable}/${l.n}`,
    unlock: l.unlock, mismatches: l.mismatches, problem: l.problem,
  })), ["node", "k", "n", "epoch", "guardians", "reachable", "unlock", "mismatches", "problem"]));
  return EXIT.ok;
}

/**
 * `unibus node unlock --genesis <node> --kex-seed FILE`: a genesis-locked node shows, in its status,
 * its key sealed to the operator's curve key and a one-boot ephemeral key. The operator's seed opens
 * the first; the key goes back sealed to the second in a signed `unlock` command; it is zeroed here.
 */
export async function nodeUnlockGenesis(o: GlobalOptions, node: string, kexSeedFile: string, connection: () => Promise<NatsConnection>, timeoutMs: number): Promise<number> {
  const link = await agentLink(o, connection);
  const status = await askAgent(link, node, "status", { node }, timeoutMs);
  if (status.kind !== "ok") throw answerError(node, "status", status, timeoutMs);
  const vault = AgentInfo.shape.vault.safeParse((status.result as { agent?: { vault?: unknown } }).agent?.vault).data;
  if (vault?.state !== "genesis-locked" || !vault.genesis_sealed || !vault.genesis_ephemeral) {
    throw new CliError("E_BAD_REQUEST", `${node}'s vault is ${vault?.state ?? "off"}, not waiting for a genesis unlock`, EXIT.failed);
  }
  const raw = readSecretFile(kexSeedFile);
  const seed = new Uint8Array(raw).slice(0, raw.toString("utf8").trimEnd().length);
  raw.fill(0);
  let pair;
  try {
    pair = await kexPairFromSeed(seed);
  } catch {
    throw new CliError("E_USAGE", `${kexSeedFile} holds no curve nkey seed (SX…)`, EXIT.usage);
  } finally {
    seed.fill(0);
  }
  const key = await openSealed(vault.genesis_sealed, pair);
  pair.secretKey.fill(0);
  if (!key) throw new CliError("E_FORBIDDEN", `${node}'s genesis key is not sealed to the key in ${kexSeedFile}`, EXIT.failed);
  let sealed: string;
  try {
    sealed = await sealTo(fromBase64Url(vault.genesis_ephemeral), key);
  } finally {
    key.fill(0);
  }
  const r = await askAgent(link, node, "unlock", { node, sealed }, Math.max(timeoutMs, 15_000));
  if (r.kind !== "ok") throw answerError(node, "unlock", r, timeoutMs);
  print(o.json, r.result, () => `${node}: unlocked (genesis); its key stays under the operator's key until the fleet has five nodes`);
  return EXIT.ok;
}

export function nodeUnlock(rest: string[], f: { genesis?: boolean; "kex-seed"?: string; timeout?: string }, o: GlobalOptions, connection: () => Promise<NatsConnection>): Promise<number> {
  const [node] = need(rest, 1, "a node");
  if (!f.genesis) usageError("node unlock takes --genesis: a node in a fleet of five or more unlocks from its peers by itself");
  const seedFile = f["kex-seed"] ?? usageError("--kex-seed FILE: the operator's curve nkey seed the genesis key is sealed to");
  return nodeUnlockGenesis(o, node!, seedFile, connection, f.timeout === undefined ? 5000 : o.timeoutMs);
}
