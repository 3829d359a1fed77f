/** Waiting for something to become true, with an injectable sleep so that tests need not wait. */
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
