// The only listener membershipd has: GET /healthz and GET /metrics, loopback by default.
import { createServer, type Server } from "node:http";
import { healthz, type PostureDeps } from "./posture.ts";
import type { HealthSnapshot, Metrics } from "./metrics.ts";

export function startHttp(
  host: string,
  port: number,
  deps: PostureDeps,
  metrics: Metrics,
  restarts: () => number,
): Promise<Server> {
  metrics.watchHealth(restarts);
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
        const text = await metrics.render({
          up: h.status === "ok",
          stream: h.stream as HealthSnapshot["stream"],
          projections: h.projections as HealthSnapshot["projections"],
        });
        return void res.writeHead(200, { "content-type": metrics.contentType }).end(text);
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
