/**
 * Image resolutions that outlive a reconcile: a worker waits at most `waitMs` for a registry, so a
 * slow one holds its own container only (shown waiting in ImageResolving), never a worker the
 * other containers need, nor the loop's stop. When the answer comes, `onSettled` enqueues the key,
 * whose next reconcile takes the answer as its fact (the plan stays pure: it sees a digest, a pull
 * failure, or "still resolving").
 *
 * A resolution is kept per key for one question (reference, policy, digest the container runs): a
 * changed manifest asks anew; an answer is handed out once (the next reconcile asks again, where the
 * resolver's short cache spares the registry).
 */
import type { DesiredContainer } from '../api/types.js';
import type { ActualContainer } from '../runtime/runtime.js';
import { pinImage, type PinResult } from '../images/pin.js';
import type { ImageResolver } from '../images/resolver.js';

/** How long a reconcile waits for a registry before it lets the resolution go on without it. */
export const RESOLVE_WAIT_MS = 1000;

interface Entry {
  question: string;
  promise: Promise<PinResult>;
  result?: PinResult;
  /** A reconcile went on without the answer: its arrival must enqueue the key. */
  left: boolean;
}

export class PendingResolutions {
  private readonly byKey = new Map<string, Entry>();

  constructor(
    private readonly o: {
      onSettled: (key: string) => void;
      waitMs?: number;
      /** A timer that does not keep the process alive (injected by tests with a fake clock). */
      sleep?: (ms: number) => Promise<void>;
    },
  ) {}

  /** How many resolutions are in flight (for tests and metrics). */
  get size(): number {
    return [...this.byKey.values()].filter((e) => !e.result).length;
  }

  /** The pin of `desired`'s image, or 'resolving' when the registry has not answered within waitMs. */
  async pin(key: string, desired: DesiredContainer, actual: ActualContainer | undefined, resolver: ImageResolver): Promise<PinResult | 'resolving'> {
    const had = actual?.applied.spec.image;
    const question = JSON.stringify([desired.spec.image?.ref, desired.spec.imagePullPolicy, had?.ref, had?.digest]);
    let e = this.byKey.get(key);
    if (e && e.question !== question) {
      this.byKey.delete(key); // asked for another image now: that answer is of no use
      e = undefined;
    }
    if (!e) {
      const entry: Entry = { question, promise: pinImage(desired, actual, resolver), left: false };
      void entry.promise.then((r) => {
        entry.result = r;
        if (entry.left && this.byKey.get(key) === entry) this.o.onSettled(key);
      });
      this.byKey.set(key, entry);
      e = entry;
    }
    if (!e.result) {
      let timer: NodeJS.Timeout | undefined;
      const sleep =
        this.o.sleep?.(this.o.waitMs ?? RESOLVE_WAIT_MS) ?? new Promise<void>((r) => (timer = setTimeout(r, this.o.waitMs ?? RESOLVE_WAIT_MS).unref()));
      await Promise.race([e.promise, sleep]);
      clearTimeout(timer);
    }
    if (e.result) {
      this.byKey.delete(key);
      return e.result;
    }
    e.left = true; // set before returning: the answer arriving from now on enqueues the key
    return 'resolving';
  }

  /** The key's container is gone from the desired state: its question no longer matters. */
  forget(key: string): void {
    this.byKey.delete(key);
  }
}
