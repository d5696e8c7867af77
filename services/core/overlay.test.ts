// Overlay addresses: CIDR parsing, host addresses only, the lowest free one.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { allocateAddress, inCidr, parseCidr } from "./overlay.ts";

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
