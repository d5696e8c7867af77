// How many of N guardians rebuild a key: K = max(3, ceil(N/3)), never above N. A cluster may set
// its own K (`override`), clamped to [2, N]: the library needs at least 2, and K > N could never unlock.
export const MIN_THRESHOLD = 3;

export function thresholdFor(n: number, override?: number | null): number {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`a vault needs at least 2 guardians, not ${n}`);
  const k = override ?? Math.max(MIN_THRESHOLD, Math.ceil(n / 3));
  return Math.min(n, Math.max(2, Math.trunc(k)));
}
