// The only listener membershipd has: GET /healthz and GET /metrics, loopback by default.
import { createServer, type Server } from "node:http";
import { healthz, type PostureDeps } from "./posture.ts";
import type { Metrics } from "./metrics.ts";

export function startHttp(host: string, port: number, deps: PostureDeps, metrics: Metrics, restarts: () => number): Promise<Server> {
  const server = createServer(async (req, res) => {
    try {
      if (req.method !== "GET") return void res.writeHead(405, { allow: "GET" }).end();
      if (req.url === "/healthz") {
        const body = await healthz(deps);
        return void res.writeHead(body.status === "ok" ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(body) + "\n");
      }
      if (req.url === "/metrics") {
        const h = await healthz(deps);
        const s = h.stream as { last_seq: number | null };
        const text = metrics.render({
          unibus_up: h.status === "ok" ? 1 : 0,
          unibus_stream_last_seq: s.last_seq ?? 0,
          unibus_projection_applied_seq: deps.projector.applied,
          unibus_projection_lag: (h.projections as { lag: number | null }).lag ?? 0,
          unibus_nats_server_restarts_total: restarts(),
        });
        return void res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text);
      }
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found" }) + "\n");
    } catch (err) {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ status: "degraded", error: (err as Error).message }) + "\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
