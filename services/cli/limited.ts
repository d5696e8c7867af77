// Runs one task per item with at most `limit` in flight: enough requests outstanding to hide the
// round trips, few enough that a thousand nodes do not mean a thousand timers and buffers at once.

/**
 * `task` for every item, at most `limit` at a time, started in item order; the results come back
 * in item order. `onSettled` hears each result as it arrives (for a progress line). Tasks should
 * return their failures as values: if one throws, no further items start and the run rejects.
 */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
  onSettled?: (result: R, index: number) => void,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`the concurrency limit must be a whole number ≥ 1, not ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (!stopped && next < items.length) {
      const i = next++;
      try {
        results[i] = await task(items[i]!, i);
      } catch (err) {
        stopped = true;
        throw err;
      }
      onSettled?.(results[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
