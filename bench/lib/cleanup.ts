/**
 * Everything a benchmark run creates is registered here as it is created, and removed in reverse
 * order at the end, on failure, or on SIGINT/SIGTERM.
 */
export class Cleanups {
  private readonly pending: (() => Promise<void>)[] = [];
  /** Cleanups started (by their own call or another runAll) that runAll must also wait for. */
  private readonly started = new Set<Promise<void>>();

  /**
   * Registers fn; returns a function that runs it now (once: later calls, and runAll, wait for
   * the same run instead of starting another or returning before it is done).
   */
  add(fn: () => Promise<void>): () => Promise<void> {
    let running: Promise<void> | undefined;
    const once = (): Promise<void> => {
      if (!running) {
        const i = this.pending.indexOf(once);
        if (i >= 0) this.pending.splice(i, 1);
        running = fn().catch((err: unknown) => console.error(`cleanup failed: ${(err as Error).message}`));
        this.started.add(running);
      }
      return running;
    };
    this.pending.push(once);
    return once;
  }

  /** Runs what is still registered, last registered first, and waits for those already running. */
  async runAll(): Promise<void> {
    for (const fn of [...this.pending].reverse()) await fn();
    await Promise.all(this.started);
  }

  /** On SIGINT/SIGTERM: clean up, then exit 130. */
  onSignals(log: (m: string) => void): void {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        log(`${sig}: cleaning up`);
        // A signal handler cannot be awaited; the exit waits for the cleanup instead.
        void this.runAll().finally(() => process.exit(130));
      });
    }
  }
}
