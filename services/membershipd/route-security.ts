// Cluster mode's route security, all or nothing: a route certificate and key under the route CA
// (mutual TLS) and the shared route secret. Any part missing and membershipd refuses to start,
// naming each one: a cluster with half its route security is a cluster without it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readSecretFile, type ClusterOptions } from "../bus/mod.ts";
import type { MembershipdConfig } from "./config.ts";
import type { ErrorCode } from "../core/mod.ts";

export const ROUTE_FILES = { ca: "route-ca.pem", cert: "route.pem", key: "route.key" } as const;
const SECRET_ENV = "UNIBUS_ROUTE_SECRET";
const SECRET_FORMAT = /^[0-9a-f]{32,128}$/;

export class RouteSecurityError extends Error {
  readonly code = "E_ROUTE_SECURITY" satisfies ErrorCode;
}

function readSecret(cfg: MembershipdConfig, env: NodeJS.ProcessEnv, missing: string[]): string | null {
  const fromEnv = env[SECRET_ENV];
  if (fromEnv) return fromEnv.trim();
  if (!existsSync(cfg.routeSecretFile)) {
    missing.push(`the route secret (${cfg.routeSecretFile} or $${SECRET_ENV})`);
    return null;
  }
  const buf = readSecretFile(cfg.routeSecretFile);
  try {
    return buf.toString("utf8").trim();
  } finally {
    buf.fill(0);
  }
}

/** The cluster block's options, or null when no routes are configured (a single node). */
export function loadRouteSecurity(cfg: MembershipdConfig, env: NodeJS.ProcessEnv = process.env): ClusterOptions | null {
  if (cfg.routes.length === 0) return null;
  const missing: string[] = [];
  const file = (name: string, what: string) => {
    const path = join(cfg.routeTlsDir, name);
    if (!existsSync(path)) missing.push(`${what} (${path})`);
    return path;
  };
  const tls = {
    caFile: file(ROUTE_FILES.ca, "the route CA"),
    certFile: file(ROUTE_FILES.cert, "the route certificate"),
    keyFile: file(ROUTE_FILES.key, "the route key"),
  };
  if (existsSync(tls.keyFile)) readSecretFile(tls.keyFile).fill(0); // refuses a key others can read
  const secret = readSecret(cfg, env, missing);
  if (missing.length)
    throw new RouteSecurityError(
      `refusing to start a cluster with partial route security: missing ${missing.join(", ")}`,
    );
  if (!SECRET_FORMAT.test(secret!))
    throw new RouteSecurityError(`the route secret must be 32 to 128 lowercase hex digits (openssl rand -hex 32)`);
  return { name: cfg.clusterName, host: cfg.routeHost, port: cfg.routePort, routes: cfg.routes, tls, secret: secret! };
}
