/**
 * Waiting on a condition with a deadline, never a fixed sleep: the condition is polled every
 * intervalMs until it returns a truthy value (returned) or the deadline passes (throws, with the
 * last error the condition threw, and a description of what was awaited).
 *
 * A condition that costs (an `acetate describe` is a Node process: ~0.3 s of CPU) is polled no
 * more than a third of the time: the pause after a check is at least twice what the check took
 * (at most 2 s). Polled back to back, three test files' CLI polls took most of both cores of the
 * test machine from the containers they were waiting for. Cheap checks (a cgroup file, a log
 * line) keep their interval, and so does a wait that names its intervalMs: it measures a latency
 * or needs that cadence.
 */

export interface WaitOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  /** Default 50 ms. */
  intervalMs?: number;
  /** What is awaited, for the error message (a function is called at the deadline). */
  message?: string | (() => string | Promise<string>);
  /** Same as message (a short name of what is awaited). */
  what?: string;
}

export function waitFor<T>(cond: () => T | Promise<T>, opts?: WaitOptions): Promise<NonNullable<T>>;
/** The same, naming what is awaited first: waitFor('exit', async () => ...). */
export function waitFor<T>(what: string, cond: () => T | Promise<T>, opts?: WaitOptions): Promise<NonNullable<T>>;
export async function waitFor<T>(a: string | (() => T | Promise<T>), b?: WaitOptions | (() => T | Promise<T>), c?: WaitOptions): Promise<NonNullable<T>> {
  if (typeof a === 'string') return waitUntil(b as () => T | Promise<T>, { ...c, what: a });
  return waitUntil(a, (b as WaitOptions | undefined) ?? {});
}

async function waitUntil<T>(cond: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const paced = opts.intervalMs === undefined;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const began = Date.now();
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const pause = paced ? Math.max(intervalMs, Math.min(2000, 2 * (Date.now() - began))) : intervalMs;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - Date.now()))));
  }
  const what = typeof opts.message === 'function' ? await opts.message() : (opts.message ?? opts.what ?? 'condition');
  const err = new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message ?? String(lastError)}` : ''}`);
  if (lastError) (err as Error & { cause?: unknown }).cause = lastError;
  throw err;
}

/** Waits until cond() stops throwing (assertions inside), returning its value. */
export async function eventually<T>(cond: () => T | Promise<T>, opts: WaitOptions = {}): Promise<T> {
  let value: T | undefined;
  await waitFor(async () => {
    value = await cond();
    return true;
  }, opts);
  return value as T;
}
