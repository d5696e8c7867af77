// Overlay addresses: CIDR parsing, host addresses only, the lowest free one.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { allocateAddress, checkOverlayCidr, inCidr, parseCidr } from "./overlay.ts";

describe("overlay addresses", () => {
  test("parseCidr normalises the base and refuses what is not a usable IPv4 range", () => {
    assert.deepEqual(parseCidr("10.0.0.77/24"), parseCidr("10.0.0.0/24"));
    for (const bad of [
      "10.0.0.0/31",
      "10.0.0.0/32",
      "10.0.0.0/7",
      "10.0.0/24",
      "10.0.0.256/24",
      "10.0.0.0",
      "a.b.c.d/24",
      "10.0.0.0/24 ",
      "",
    ]) {
      assert.equal(parseCidr(bad), null, bad);
    }
  });

  test("inCidr: host addresses only, never the network or broadcast address or anything outside", () => {
    const c = parseCidr("192.168.4.0/24")!;
    assert.ok(inCidr(c, "192.168.4.1") && inCidr(c, "192.168.4.254"));
    for (const out of [
      "192.168.4.0",
      "192.168.4.255",
      "192.168.5.1",
      "192.168.3.254",
      "10.0.0.1",
      "192.168.4",
      "192.168.4.1.1",
      "::1",
    ])
      assert.equal(inCidr(c, out), false, out);
  });

  test("allocateAddress: lowest free host, always inside the CIDR, null when full", () => {
    const c = parseCidr("172.16.0.0/29")!;
    const taken = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const a = allocateAddress(c, taken)!;
      assert.ok(inCidr(c, a), a);
      assert.ok(!taken.has(a));
      taken.add(a);
    }
    assert.equal(allocateAddress(c, taken), null);
    taken.delete("172.16.0.3");
    assert.equal(allocateAddress(c, taken), "172.16.0.3");
    assert.equal(
      allocateAddress(parseCidr("10.0.0.0/24")!, new Set(["10.0.0.1", "99.9.9.9"])),
      "10.0.0.2",
      "addresses outside the range do not matter",
    );
  });
});

describe("the configured overlay CIDR", () => {
  const lan = [{ name: "eth0", cidr: "192.168.1.20/24" }];

  test("a private range no host network overlaps is accepted, whatever the tests and benches use", () => {
    for (const ok of [
      "10.0.0.0/24",
      "10.64.0.0/16",
      "10.64.0.0/18",
      "172.16.0.0/12",
      "192.168.2.0/24",
      "100.64.0.0/10",
    ])
      assert.equal(checkOverlayCidr(ok, lan), null, ok);
    assert.equal(checkOverlayCidr("10.0.0.0/24", [{ name: "eth0", cidr: "10.0.1.5/24" }]), null);
  });

  test("a public range, or one reaching out of its private range, is refused (E_OVERLAY_CIDR)", () => {
    for (const bad of [
      "8.8.8.0/24",
      "11.0.0.0/8",
      "172.32.0.0/16",
      "172.0.0.0/8",
      "192.0.2.0/24",
      "100.128.0.0/16",
      "10.0.0.0/7",
    ]) {
      const e = checkOverlayCidr(bad, []);
      assert.equal(e?.code, "E_OVERLAY_CIDR", bad);
    }
    assert.match(
      checkOverlayCidr("8.8.8.0/24", [])!.message,
      /^overlay CIDR 8\.8\.8\.0\/24 is not inside a private range/,
    );
    assert.match(checkOverlayCidr("10.0.0.0", [])!.message, /is not an IPv4 range/);
  });

  test("overlapping one of the host's networks, either way round, is refused and names it", () => {
    const inside = checkOverlayCidr("192.168.0.0/16", lan);
    assert.equal(inside?.code, "E_OVERLAY_CIDR");
    assert.equal(
      inside?.message,
      "overlay CIDR 192.168.0.0/16 overlaps this host's network 192.168.1.20/24 on eth0; choose a range no local network uses",
    );
    assert.equal(checkOverlayCidr("192.168.1.128/25", lan)?.code, "E_OVERLAY_CIDR");
    assert.equal(checkOverlayCidr("10.1.2.0/24", [{ name: "vpn", cidr: "10.0.0.1/8" }])?.code, "E_OVERLAY_CIDR");
    assert.equal(checkOverlayCidr("10.1.2.0/24", [{ name: "tun", cidr: "10.1.2.77/32" }])?.code, "E_OVERLAY_CIDR");
    // A network that is not one (no cidr the parser reads) cannot overlap anything.
    assert.equal(checkOverlayCidr("10.1.2.0/24", [{ name: "odd", cidr: "fe80::1/64" }]), null);
  });
});
