/**
 * A light poll of process states (runtime.list), like the kubelet's PLEG relist: it finds the keys
 * whose process changed (exited, vanished, appeared, lost its supervisor, lost its network) since the last poll, so
 * an exit is noticed within the poll period rather than at the next full resync.
 */
import type { ActualContainer } from '../runtime/runtime.js';

export class ProcessPoll {
  /** Last process state seen per key: state|pid|startedAt|supervisor lost|network broken. */
  private seen = new Map<string, string>();
  private polledOnce = false;

  /** The keys whose process changed since the last call. The first call only learns (the first sync covers every key), except a lost supervisor, which is news. */
  changed(list: ActualContainer[]): string[] {
    const now = new Map(
      // A network found broken by the list's cheap look (veth or bridge deleted, a port rule gone)
      // is news too: repaired within the poll period, not at the next full resync.
      list.map((a) => [
        a.key,
        `${a.process.state}|${a.process.pid ?? ''}|${a.process.startedAt ?? ''}|${a.process.unsupervised ? 'u' : ''}|${a.network?.problem ? 'n' : ''}`,
      ]),
    );
    const first = !this.polledOnce;
    this.polledOnce = true;
    const changed: string[] = [];
    for (const [k, v] of now) if (this.seen.get(k) !== v) changed.push(k);
    for (const k of this.seen.keys()) if (!now.has(k)) changed.push(k);
    this.seen = now;
    return first ? list.filter((a) => a.process.unsupervised).map((a) => a.key) : changed;
  }

  /**
   * Forgets what was seen of `key` (the loop just acted on it): whatever the next poll sees of it
   * is news. A network repaired and broken again between two polls (a port rule repaired, then
   * the bridge deleted) looked unchanged, broken both times, and was never repaired.
   */
  forget(key: string): void {
    this.seen.delete(key);
  }
}
