// The Mesh's syncs against a pretend host (its `run`): what it asks `ip` and `wg` to do. Here: an
// interface that vanished under a running agent (wireguard-go died) is made anew, and having no
// sessions the node dials its peers itself instead of waiting for theirs to time out.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { MeshResult } from "../../../schemas/mod.ts";
import { Mesh } from "./mesh.ts";

const key = (c: string) => `${c.repeat(42)}A=`;

/** A host with or without the interface; every `wg set … peer` call recorded. */
function fakeHost() {
  const host = { up: false, peers: [] as string[][], calls: [] as string[] };
  const run = async (file: string, args: string[]) => {
    const line = `${file} ${args.join(" ")}`;
    host.calls.push(line);
    if (line.startsWith("ip link show")) {
      if (!host.up) throw new Error("no such device");
      return "";
    }
    if (line.startsWith("ip link add")) {
      host.up = true;
      return "";
    }
    if (line.startsWith("wg show")) {
      if (!host.up) throw new Error("no such device");
      return `${["cHJpdmF0ZQ==", key("S"), "51820", "off"].join("\t")}\n`;
    }
    if (file === "wg" && args[0] === "set" && args.includes("peer")) host.peers.push(args);
    return "";
  };
  return { host, run };
}

const answer: MeshResult = {
  node: "n1",
  public_key: key("S"),
  endpoint: "10.231.5.10:51820",
  overlay_ip: "10.0.0.1",
  overlay_cidr: "10.0.0.0/24",
  listen_port: 51820,
  peers: [
    {
      node: "n2",
      public_key: key("b"),
      overlay_ip: "10.0.0.2",
      endpoint: "10.231.5.11:51820",
      allowed_ips: ["10.0.0.2/32"],
    },
  ],
  next: null,
  version: 7,
};

test("an interface that vanished under the running agent is made anew, and the node dials its peers", async () => {
  const { host, run } = fakeHost();
  const mesh = new Mesh({
    node: "n1",
    iface: "unibus0",
    keyFile: "/nonexistent/wg.key",
    ask: async () => ({ ok: true, result: answer }),
    nudgeKeys: () => [],
    log: () => {},
    run,
  });
  await mesh.sync();
  assert.equal(host.peers.length, 1);
  assert.match(host.peers[0]!.join(" "), /persistent-keepalive 25$/, "coming up: it dials");

  host.up = false; // wireguard-go died
  host.peers = [];
  await mesh.sync(); // finds it gone
  assert.equal((await mesh.info()).problem, "unibus0 is gone");
  await mesh.sync(); // makes it again
  mesh.stop();
  assert.ok(host.up);
  assert.equal(host.peers.length, 1);
  assert.match(host.peers[0]!.join(" "), /persistent-keepalive 25$/, "made anew: it dials again");
});
