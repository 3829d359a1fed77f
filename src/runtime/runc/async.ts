/** Small async helpers for the runc runtime. */

/** Runs callbacks with the same key one after another (operations on one container never interleave). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** map with at most `limit` callbacks in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Poll `check` until it returns true or the deadline passes; returns the last result. With
 * `firstIntervalMs`, the first wait is that short and each next one doubles up to `intervalMs`:
 * what usually happens within milliseconds is seen within milliseconds, without polling fast for
 * what takes long.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; firstIntervalMs?: number; sleep?: Sleep; now?: () => number },
): Promise<boolean> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? realSleep;
  const deadline = now() + opts.timeoutMs;
  const max = opts.intervalMs ?? 50;
  let interval = Math.min(opts.firstIntervalMs ?? max, max);
  for (;;) {
    if (await check()) return true;
    if (now() >= deadline) return false;
    await sleep(interval);
    interval = Math.min(interval * 2, max);
  }
}
