/**
 * A per-key queue: callbacks with the same key run one after another (operations on one container,
 * or writes of one status file, never interleave), different keys run at once. Kept by hand: a
 * concurrency limiter per key (p-limit with 1) would need a map of limiters and their cleanup;
 * this is a promise chain per key that drops itself when its key goes idle.
 */
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
