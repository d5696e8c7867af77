// membershipd in vault mode (--at-rest-key-handoff PATH): the JetStream at-rest key is this
// node's vault data key, which the co-located agent rebuilds from its guardians (over any
// reachable server of the cluster) and hands over in PATH, a 0600 file on tmpfs. membershipd
// leaves PATH.want, waits (its /healthz answers "degraded: waiting for the vault key", with the
// agent's vault state, on the usual port meanwhile), takes the key (the file is wiped and
// unlinked), checks it against at-rest.check, and keeps it only in memory for nats-server.
import { createServer, type Server } from "node:http";
import { dirname } from "node:path";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { VaultInfo } from "../../schemas/mod.ts";
import {
  AtRestKeyError,
  KeyHandoffError,
  fitsAtRestCheck,
  prepareKeyDir,
  takeKeyFile,
  vaultStatePath,
  wantPath,
  wipeFile,
} from "../bus/mod.ts";

export interface HandedKeyOptions {
  path: string;
  checkFile: string;
  storeExists: boolean;
  node: string;
  version: string;
  http: { host: string; port: number };
  log: (line: string) => void;
  pollMs?: number;
  /** How often the wait is logged again. */
  logEveryMs?: number;
}

/** vault-state.json as the agent writes it (services/agent/vault/handoff.ts); no secret in it. */
const AgentVaultState = z
  .object({
    state: VaultInfo.shape.state,
    problem: z.string().max(1000).nullable().default(null),
    reachable: z.number().int().min(0).optional(),
    k: z.number().int().min(0).optional(),
    n: z.number().int().min(0).optional(),
    next_retry_ms: z.number().int().min(0).nullable().optional(),
    at: z.string().max(64).optional(),
  })
  .strip();
export type AgentVaultState = z.infer<typeof AgentVaultState>;

/** The agent's vault state as it last wrote it, or null (none, or not what the agent writes). */
export function agentVaultState(handoff: string): AgentVaultState | null {
  try {
    return AgentVaultState.safeParse(JSON.parse(readFileSync(vaultStatePath(handoff), "utf8"))).data ?? null;
  } catch {
    return null;
  }
}

/** What /healthz says while the key is awaited (pure but for the state file). */
export function waitingHealth(o: Pick<HandedKeyOptions, "path" | "node" | "version">): Record<string, unknown> {
  const vault = agentVaultState(o.path);
  const peers =
    vault?.state === "waiting-for-peers"
      ? `; the agent's vault is waiting for peers (${vault.reachable ?? 0} of ${vault.k ?? "?"} guardians answered)`
      : vault
        ? `; the agent's vault is ${vault.state}`
        : "; no agent has reported its vault yet";
  return {
    status: "degraded",
    node: o.node,
    version: o.version,
    posture: { at_rest: "locked", sealed_keys: true },
    vault: vault ?? { state: "unknown" },
    problems: [`waiting for the vault key${peers}`],
  };
}

function waitingServer(o: HandedKeyOptions): Promise<Server | null> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz")
      return void res
        .writeHead(503, { "content-type": "application/json" })
        .end(JSON.stringify(waitingHealth(o)) + "\n");
    res
      .writeHead(503, { "content-type": "application/json" })
      .end(JSON.stringify({ status: "degraded", error: "waiting for the vault key" }) + "\n");
  });
  return new Promise((resolve) => {
    server.once("error", (err) => {
      o.log(`the waiting /healthz could not listen on ${o.http.host}:${o.http.port}: ${err.message}`);
      resolve(null);
    });
    server.listen(o.http.port, o.http.host, () => resolve(server));
  });
}

/** Waits for the agent's hand-off and returns the key (hex). Throws AtRestKeyError for a key that does not fit. */
export async function awaitHandedKey(o: HandedKeyOptions): Promise<string> {
  try {
    prepareKeyDir(dirname(o.path));
  } catch (err) {
    if (err instanceof KeyHandoffError) throw new AtRestKeyError(`${err.message} [${err.code}]`);
    throw err;
  }
  const want = wantPath(o.path);
  const server = await waitingServer(o);
  let lastLog = 0;
  // Stopped while it waits: the request is withdrawn (the normal shutdown is installed only later).
  const stop = (signal: string) => {
    wipeFile(want);
    o.log(`${signal} while waiting for the vault key: stopping`);
    process.exit(0);
  };
  const onTerm = () => stop("SIGTERM");
  const onInt = () => stop("SIGINT");
  process.once("SIGTERM", onTerm);
  process.once("SIGINT", onInt);
  try {
    for (;;) {
      if (!existsSync(want)) writeFileSync(want, "", { mode: 0o600 });
      const key = takeKeyFile(o.path);
      if (key) {
        const fits = fitsAtRestCheck(key, o.checkFile);
        if (fits === false)
          throw new AtRestKeyError(
            `the key the vault handed over in ${o.path} does not open this store (key check mismatch): this node's vault data key is not its JetStream key (see unibus-agent vault adopt-key); refusing to start with an empty store`,
          );
        if (fits === null && o.storeExists)
          o.log("the store predates key checks; the handed-over key is checked by opening the event stream");
        o.log("the vault key was handed over; starting nats-server with it");
        return key;
      }
      if (Date.now() - lastLog >= (o.logEveryMs ?? 30_000)) {
        lastLog = Date.now();
        o.log(
          `waiting for the vault key in ${o.path}${String((waitingHealth(o).problems as string[])[0]).replace(/^waiting for the vault key/, "")}`,
        );
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
    }
  } finally {
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
    wipeFile(want);
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  }
}
