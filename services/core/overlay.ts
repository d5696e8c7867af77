// IPv4 overlay addresses from a CIDR: the lowest free host address, never the network or broadcast.
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
