// IPv4 overlay addresses from a CIDR: the lowest free host address, never the network or broadcast.
// And the check of the CIDR an operator configures: a private range that none of this host's own
// networks overlaps (the overlay's routes would shadow them, or theirs the overlay's).
import { domainError, type DomainError } from "./errors.ts";

export interface Cidr {
  base: number;
  bits: number;
}

export function ipToInt(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

export function parseCidr(text: string): Cidr | null {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) return null;
  const ip = ipToInt(m[1]!);
  const bits = Number(m[2]);
  if (ip === null || bits < 8 || bits > 30) return null;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ip & mask) >>> 0, bits };
}

export function inCidr(cidr: Cidr, address: string): boolean {
  const n = ipToInt(address);
  if (n === null) return false;
  const size = 2 ** (32 - cidr.bits);
  return n > cidr.base && n < cidr.base + size - 1;
}

/** The lowest host address of `cidr` (at or above `from`) not in `taken`, or null when the range is full. */
export function allocateAddress(cidr: Cidr, taken: ReadonlySet<string>, from = 0): string | null {
  const size = 2 ** (32 - cidr.bits);
  // `from`: the caller knows every host address below it is taken (the fleet keeps that mark).
  const start = from > cidr.base + 1 && from < cidr.base + size - 1 ? from - cidr.base : 1;
  for (let i = start; i < size - 1; i++) {
    const ip = intToIp(cidr.base + i);
    if (!taken.has(ip)) return ip;
  }
  return null;
}

/** The private ranges an overlay may use: RFC 1918 and RFC 6598 (carrier-grade NAT) space. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"] as const;

/** One of this host's networks, as os.networkInterfaces() names it (`cidr` like "192.168.1.20/24"). */
export interface HostNetwork {
  name: string;
  cidr: string;
}

/** Any IPv4 network a/0…/32 as its first address and size; null when the text is not one. */
function ipv4Range(text: string): { start: number; size: number } | null {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  const ip = m ? ipToInt(m[1]!) : null;
  const bits = m ? Number(m[2]) : -1;
  if (ip === null || bits < 0 || bits > 32) return null;
  const size = 2 ** (32 - bits);
  return { start: Math.floor(ip / size) * size, size };
}

const overlaps = (a: { start: number; size: number }, b: { start: number; size: number }) =>
  a.start < b.start + b.size && b.start < a.start + a.size;
const within = (inner: { start: number; size: number }, outer: { start: number; size: number }) =>
  inner.start >= outer.start && inner.start + inner.size <= outer.start + outer.size;

/**
 * The overlay CIDR an operator configured, checked: a usable range (/8 to /30), inside one private
 * range, overlapping none of `hostNetworks` (the caller leaves loopback out). Null when it may be used.
 */
export function checkOverlayCidr(text: string, hostNetworks: readonly HostNetwork[]): DomainError | null {
  const cidr = parseCidr(text);
  if (!cidr)
    return domainError("E_OVERLAY_CIDR", `overlay CIDR ${JSON.stringify(text)} is not an IPv4 range from /8 to /30`);
  const range = { start: cidr.base, size: 2 ** (32 - cidr.bits) };
  if (!PRIVATE_RANGES.some((p) => within(range, ipv4Range(p)!)))
    return domainError(
      "E_OVERLAY_CIDR",
      `overlay CIDR ${text} is not inside a private range (${PRIVATE_RANGES.join(", ")}); overlay addresses must not be public ones`,
    );
  for (const n of hostNetworks) {
    const net = ipv4Range(n.cidr);
    if (net && overlaps(range, net))
      return domainError(
        "E_OVERLAY_CIDR",
        `overlay CIDR ${text} overlaps this host's network ${n.cidr} on ${n.name}; choose a range no local network uses`,
        { interface: n.name, network: n.cidr },
      );
  }
  return null;
}
