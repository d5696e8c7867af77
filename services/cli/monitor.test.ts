// monitor report's pure parts: the posture cell, the verdict, --url parsing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { postureFlags, summarize, urlTargets, type NodeReport } from "./monitor.ts";

test("the posture cell: names when on, -name when off, ?name when the node did not say", () => {
  assert.equal(
    postureFlags({ auth: "enforce", tls: true, routes: "mtls", acl: true, at_rest: "chachapoly", sealed_keys: true }),
    "auth tls acl routes:mtls at_rest:chachapoly sealed_keys",
  );
  assert.equal(
    postureFlags({ auth: "none", tls: false, routes: "none", acl: false, at_rest: "none", sealed_keys: false }),
    "-auth -tls -acl -routes -at_rest -sealed_keys",
  );
  assert.equal(postureFlags({ auth: "unknown", at_rest: "unknown" }), "?auth ?tls ?acl ?routes ?at_rest ?sealed_keys");
  assert.equal(
    postureFlags({ auth: "enforce", at_rest: "aes\u001b[2J" }),
    "auth ?tls ?acl ?routes at_rest:aes\\x1b[2J ?sealed_keys",
  );
  assert.equal(postureFlags(null), null);
});

const node = (name: string, status: NodeReport["status"]): NodeReport => ({
  node: name,
  url: `http://${name}:8470/healthz`,
  status,
  http_status: null,
  reported_node: null,
  version: null,
  posture: null,
  peers: null,
  meta_leader: null,
  stream_replicas: null,
  last_seq: null,
  lag: null,
  problems: [],
  ms: 0,
});

test("the verdict: unreachable (2) beats degraded (1) beats ok (0), each named", () => {
  assert.deepEqual(summarize([node("a", "ok"), node("b", "ok")]).exit_code, 0);
  assert.equal(summarize([node("a", "ok"), node("b", "ok")]).reason, "all 2 node(s) ok");
  const d = summarize([node("a", "ok"), node("b", "degraded")]);
  assert.deepEqual([d.status, d.exit_code, d.reason], ["degraded", 1, "degraded: b"]);
  const u = summarize([node("a", "unreachable"), node("b", "degraded"), node("c", "unreachable")]);
  assert.deepEqual([u.status, u.exit_code, u.reason], ["unreachable", 2, "unreachable: a, c; degraded: b"]);
});

test("--url: base URLs get /healthz, a /healthz URL stays, commas and repeats both work", () => {
  assert.deepEqual(urlTargets(["http://127.0.0.1:8470,http://10.0.0.2:8470/healthz", "http://[::1]:9/base/"]), [
    { node: "127.0.0.1:8470", url: "http://127.0.0.1:8470/healthz" },
    { node: "10.0.0.2:8470", url: "http://10.0.0.2:8470/healthz" },
    { node: "[::1]:9", url: "http://[::1]:9/base/healthz" },
  ]);
  for (const bad of ["ftp://x/", "not a url", "http://u:p@h:1", ","])
    assert.throws(
      () => urlTargets([bad]),
      (e: any) => e.code === "E_USAGE",
      bad,
    );
});
