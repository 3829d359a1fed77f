/**
 * What the loop last read of each container: every `runtime.get` of a reconcile and every
 * `runtime.list` of the process poll, kept as it was read. `acetate get` and `acetate plan`
 * beside a running loop ask it for this (view-socket.ts) instead of reading every container's
 * files again: at 2,500 containers that read is ~1.5 s of CPU, the answer a fraction of it.
 *
 * It is the kubelet's model (`kubectl get` shows the status the node last reported): a process
 * exit is an event (runtime.watchProcesses) whose reconcile reads the container again within
 * milliseconds, and so is every action the loop takes; a lost supervisor is found by the 2 s
 * poll; what no event tells (limits changed by hand with `runc update`) waits for the periodic
 * resync. The plan made from this view is the one the loop makes from its next reads.
 *
 * - Ordering: a read that started before another one finished may return after it (the poll's
 *   list beside a reconcile's get after a resize). Each observation carries the sequence number
 *   of the call that made it, and an older call never overwrites a newer one, a removal included
 *   (kept as a tombstone while calls are in flight).
 * - A read that failed leaves its container unknown: the view is not whole (readers read the
 *   node themselves) until a later read of it succeeds. So does news of a change no read has
 *   followed yet (an exit event while the key waits out a back-off or the workers are busy: the
 *   loop reads it again at once, outside its queue, as its poll does: see Controller).
 */
import type { ActualContainer, ListOptions, Runtime } from '../runtime/runtime.js';

interface Seen {
  /** Sequence number of the call that read it. */
  seq: number;
  /** undefined: the container was found gone (a tombstone, see end()). */
  actual: ActualContainer | undefined;
}

export class ObservedContainers {
  private readonly seen = new Map<string, Seen>();
  /** Keys found gone while other calls were in flight. */
  private readonly tombstones = new Set<string>();
  /** Keys whose last read failed, with that read's sequence number. */
  private readonly unknown = new Map<string, number>();
  private seq = 0;
  private inFlight = 0;
  private whole = false;
  /** Changes at every observation: answers built from the same generation are the same. */
  generation = 0;

  /** The runtime whose get and list feed this view (every other member is the runtime's own). */
  wrap(runtime: Runtime): Runtime {
    const get = async (key: string): Promise<ActualContainer | undefined> => {
      const seq = this.begin();
      try {
        const actual = await runtime.get(key);
        this.saw(key, seq, actual);
        return actual;
      } catch (err) {
        this.failed([key], seq);
        throw err;
      } finally {
        this.end();
      }
    };
    const list = async (opts?: ListOptions): Promise<ActualContainer[]> => {
      const seq = this.begin();
      const keys = opts?.keys ? [...opts.keys] : undefined;
      try {
        const found = await runtime.list(keys ? { ...opts, keys } : opts);
        for (const a of found) this.saw(a.key, seq, a);
        // What was asked for and not found is gone (a full list: everything not in it).
        const present = new Set(found.map((a) => a.key));
        for (const k of keys ?? [...this.seen.keys()]) if (!present.has(k)) this.saw(k, seq, undefined);
        return found;
      } catch (err) {
        // A failed full list says nothing of any one container: those asked for are unknown.
        if (keys) this.failed(keys, seq);
        throw err;
      } finally {
        this.end();
      }
    };
    return new Proxy(runtime, {
      get(target, prop) {
        if (prop === 'get') return get;
        if (prop === 'list') return list;
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /**
   * From now on the view holds every container (the loop's first sync read each one): until
   * then, containers() answers nothing and readers read the node themselves.
   */
  markWhole(): void {
    this.whole = true;
    this.generation++;
  }

  /** The loop stops reading (it is stopping): from now on nothing is answered. */
  close(): void {
    this.whole = false;
    this.generation++;
  }

  /** News that `key` changed (an exit, a lost supervisor): unknown until a read that starts after now. */
  invalidate(key: string): void {
    this.unknown.set(key, ++this.seq);
    this.generation++;
  }

  /** Every container as last seen, sorted by key; undefined before markWhole() or while a container is unknown. */
  containers(): ActualContainer[] | undefined {
    if (!this.whole || this.unknown.size) return undefined;
    const out: ActualContainer[] = [];
    for (const s of this.seen.values()) if (s.actual) out.push(s.actual);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private begin(): number {
    this.inFlight++;
    return ++this.seq;
  }

  private end(): void {
    // No call in flight: no older answer can come back, so the tombstones have done their work.
    if (--this.inFlight === 0) {
      for (const k of this.tombstones) this.seen.delete(k);
      this.tombstones.clear();
    }
  }

  private saw(key: string, seq: number, actual: ActualContainer | undefined): void {
    const prev = this.seen.get(key);
    if (prev && prev.seq > seq) return; // a newer read already answered
    this.generation++;
    this.seen.set(key, { seq, actual });
    if (actual) this.tombstones.delete(key);
    else this.tombstones.add(key);
    if ((this.unknown.get(key) ?? 0) < seq) this.unknown.delete(key);
  }

  private failed(keys: string[], seq: number): void {
    for (const k of keys) if ((this.seen.get(k)?.seq ?? 0) < seq) this.unknown.set(k, seq);
    this.generation++;
  }
}
