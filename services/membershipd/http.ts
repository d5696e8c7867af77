// The only listener membershipd has: GET /healthz and GET /metrics, loopback by default.
import { createServer, type Server } from "node:http";
import { healthz, type PostureDeps } from "./posture.ts";
import type { Metrics } from "./metrics.ts";
import type { VaultCounts } from "./vault-tally.ts";

/** The fleet's vaults by state, once the tally knows them. */
function vaultGauges(v: VaultCounts | null): Record<string, number> {
  return v
    ? {
        unibus_vaults: v.owners,
        unibus_vaults_unlocked: v.unlocked,
        unibus_vaults_waiting_for_peers: v.waiting_for_peers,
        unibus_vaults_genesis_locked: v.genesis_locked,
      }
    : {};
}

export function startHttp(
  host: string,
  port: number,
  deps: PostureDeps,
  metrics: Metrics,
  restarts: () => number,
): Promise<Server> {
  const server = createServer(async (req, res) => {
    try {
      if (req.method !== "GET") return void res.writeHead(405, { allow: "GET" }).end();
      if (req.url === "/healthz") {
        const body = await healthz(deps);
        return void res
          .writeHead(body.status === "ok" ? 200 : 503, { "content-type": "application/json" })
          .end(JSON.stringify(body) + "\n");
      }
      if (req.url === "/metrics") {
        const h = await healthz(deps);
        const s = h.stream as { last_seq: number | null; bytes: number | null; max_bytes: number | null };
        const text = metrics.render({
          unibus_up: h.status === "ok" ? 1 : 0,
          unibus_stream_last_seq: s.last_seq ?? 0,
          // Alert on bytes / max_bytes (membershipd's own alarm is at 80 %); max_bytes 0: unlimited.
          unibus_stream_bytes: s.bytes ?? 0,
          unibus_stream_max_bytes: s.max_bytes ?? 0,
          unibus_projection_applied_seq: deps.projector.applied,
          unibus_projection_lag: (h.projections as { lag: number | null }).lag ?? 0,
          unibus_nats_server_restarts_total: restarts(),
          ...vaultGauges(h.vaults as VaultCounts | null),
        });
        return void res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text);
      }
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found" }) + "\n");
    } catch (err) {
      res
        .writeHead(500, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "degraded", error: (err as Error).message }) + "\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
