// The bootstrap admin of a membershipd process, as the tests that restart it use it: a connection
// with its admin.creds and the data dir's CA, its signer, signed commands to membershipd, and a
// node's `status` (null when the agent does not answer within 2 s).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject, type Reply } from "../schemas/mod.ts";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import type { MembershipdHandle } from "./harness.ts";

export interface AdminSession {
  nc: NatsConnection;
  signer: Signer;
  /** A membershipd action signed as `admin`; the reply as it came. */
  send(action: string, args: Record<string, unknown>): Promise<any>;
  /** The node agent's `status` reply, or null when it does not answer. */
  status(node: string): Promise<Reply | null>;
  close(): Promise<void>;
}

export async function adminSession(md: MembershipdHandle): Promise<AdminSession> {
  const creds = readCredsFile(join(md.dataDir, "admin.creds"));
  const nc = await connectNats({
    servers: md.natsUrl,
    name: "test-admin",
    caFile: join(md.dataDir, "tls", "ca.pem"),
    creds: creds.bytes,
    inboxPrefix: inboxPrefix(creds.publicKey),
  });
  const signer = signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim());
  return {
    nc,
    signer,
    send: async (action, args) =>
      sendCommand(nc, `unibus.cmd.membership.${action}`, buildCommand(signer, "admin", action, args), 15_000),
    status: (node) =>
      sendCommand(
        nc,
        nodeCommandSubject(node, "status"),
        buildCommand(signer, "admin", "status", { node }),
        2000,
      ).catch(() => null),
    close: () => nc.close().catch(() => {}),
  };
}
