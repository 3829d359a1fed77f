/** What the kube informer tells its listeners, how it is set up, and what it counts. */
import type { Clock } from '../../contracts/clock.js';
import type { Logger } from '../../contracts/logger.js';
import type { KubeApi, KubeContainer } from './client.js';
import type { SelectorMode } from './node-selector.js';

export type InformerEvent =
  /** The cache was replaced by a list: any key may have changed. */
  | { kind: 'relisted'; keys: string[] }
  | { kind: 'upsert'; key: string; obj: KubeContainer; prev?: KubeContainer }
  | { kind: 'delete'; key: string; obj: KubeContainer }
  /** Periodic replay of the whole cache. */
  | { kind: 'resync' }
  /** complete() changed (false after a 410, true after the next list). */
  | { kind: 'complete'; complete: boolean };

export interface InformerOptions {
  api: KubeApi;
  node: string;
  selector?: SelectorMode;
  clock?: Clock;
  logger?: Logger;
  /** Reconnect/re-list backoff after failures: base (default 1 s) doubling up to max (default 30 s). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Server-side timeout of each watch; default a random 300–600 s, as client-go. */
  watchTimeoutSeconds?: number;
  /** A watch with no event for this long is abandoned; default watch timeout + 60 s. */
  idleTimeoutMs?: number;
  /** Replay the cache to listeners this often; default 5 min, 0 = never. */
  resyncIntervalMs?: number;
  /** Re-list this often even when the watch is healthy; default 0 = never. */
  relistIntervalMs?: number;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
}

export interface InformerStats {
  lists: number;
  listFailures: number;
  watches: number;
  watchFailures: number;
  gone: number;
  bookmarks: number;
  events: number;
}
