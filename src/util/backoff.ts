/**
 * Exponential backoff: base, doubling, capped. The work queue owns the per-key one (KeyedBackoff)
 * and alone decides retry delays of reconciles; the kube informer's reconnect uses backoffDelay
 * for its own schedule (with jitter, so that many nodes do not reconnect in step).
 */

export interface BackoffOptions {
  /** First delay. Default 1s. */
  baseMs?: number;
  /** Cap. Default 5 minutes. */
  maxMs?: number;
  /** Multiplier between consecutive failures. Default 2. */
  factor?: number;
  /** Fraction of the delay taken off at random (0.25: between 75% and 100% of it). Default 0. */
  jitter?: number;
  /** Random source in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
}

export const DEFAULT_BACKOFF = { baseMs: 1000, maxMs: 5 * 60_000, factor: 2 } as const;

/** Delay after the n-th consecutive failure (n ≥ 1): min(base · factor^(n-1), max). */
export function backoffDelay(failures: number, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const max = opts.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const factor = opts.factor ?? DEFAULT_BACKOFF.factor;
  if (failures <= 0) return 0;
  // Avoid overflow for huge failure counts: once past the cap, stay there.
  const exp = Math.min(failures - 1, 64);
  const d = base * Math.pow(factor, exp);
  const capped = Number.isFinite(d) ? Math.min(d, max) : max;
  const jitter = opts.jitter ?? 0;
  if (jitter <= 0) return capped;
  return Math.round(capped * (1 - jitter + (opts.random ?? Math.random)() * jitter));
}

export class KeyedBackoff {
  private failures = new Map<string, number>();

  constructor(private readonly opts: BackoffOptions = {}) {}

  /** Records one more failure of key and returns how long to wait before retrying it. */
  next(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    return backoffDelay(n, this.opts);
  }

  /** Consecutive failures of key so far. */
  count(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Forgets key (after a success): the next failure waits the base delay again. */
  reset(key: string): void {
    this.failures.delete(key);
  }

  /** Keys currently backing off. */
  keys(): string[] {
    return [...this.failures.keys()];
  }
}
