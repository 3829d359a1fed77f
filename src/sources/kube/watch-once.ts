/**
 * One watch of Containers from a resourceVersion, until it ends: how it ended (WatchEnd) is what
 * the informer's reconnect schedule decides on.
 *
 * - ERROR events and failures with code 410 (or reason Expired/Gone) end it as `gone`: the history
 *   is lost and the informer must list again.
 * - A watch silent for longer than idleMs is abandoned as an error: a half-open TCP connection
 *   never ends by itself.
 */
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { KubeApiError, type KubeApi, type KubeContainer, type Selector, type WatchHandle } from './client.js';

export type WatchEnd =
  | { kind: 'gone'; message: string }
  /** Ended cleanly (server timeout) after `events` events (bookmarks included) and `ms`. */
  | { kind: 'closed'; events: number; ms: number }
  | { kind: 'error'; err: KubeApiError }
  | { kind: 'aborted' };

export interface WatchOnceOptions {
  api: KubeApi;
  clock: Clock;
  selector: Selector;
  resourceVersion: string;
  timeoutSeconds: number;
  idleMs: number;
  /** Receives the function that ends the watch early (as `aborted`), and undefined once it ended. */
  setAbort: (abort: (() => void) | undefined) => void;
  /** Each decoded event; BOOKMARKs only carry a resourceVersion. */
  onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK', obj: KubeContainer) => void;
  onMalformed: (type: string) => void;
  /** True once the informer is stopping: later events are dropped. */
  stopped: () => boolean;
}

export function watchOnce(o: WatchOnceOptions): Promise<WatchEnd> {
  const { clock } = o;
  const started = clock.now();
  return new Promise<WatchEnd>((resolve) => {
    let settled = false;
    let events = 0;
    let handle: WatchHandle | undefined;
    let idle: TimerHandle | undefined;
    const finish = (end: WatchEnd): void => {
      if (settled) return;
      settled = true;
      if (idle) clock.clearTimeout(idle);
      o.setAbort(undefined);
      handle?.abort();
      resolve(end);
    };
    const arm = (): void => {
      if (idle) clock.clearTimeout(idle);
      idle = clock.setTimeout(
        () => finish({ kind: 'error', err: new KubeApiError(0, 'Timeout', `no event or bookmark for ${o.idleMs} ms; the connection is presumed dead`) }),
        o.idleMs,
      );
    };
    o.setAbort(() => finish({ kind: 'aborted' }));
    arm();
    void o.api
      .watchContainers(
        { ...o.selector, resourceVersion: o.resourceVersion, timeoutSeconds: o.timeoutSeconds },
        (type, raw) => {
          if (settled || o.stopped()) return;
          arm();
          events += 1;
          if (type === 'ERROR') {
            const code = Number(raw.code ?? 0);
            const reason = String(raw.reason ?? '');
            const message = String(raw.message ?? 'watch error');
            if (code === 410 || reason === 'Expired' || reason === 'Gone') finish({ kind: 'gone', message });
            else finish({ kind: 'error', err: new KubeApiError(code, reason || 'Unknown', `watch error: ${message}`) });
            return;
          }
          const obj = raw as unknown as KubeContainer;
          if (type === 'BOOKMARK') {
            if (obj?.metadata) o.onEvent(type, obj);
            return;
          }
          if (!obj?.metadata?.name || (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED')) {
            o.onMalformed(type);
            return;
          }
          o.onEvent(type, obj);
        },
        (err) => {
          if (!err) finish({ kind: 'closed', events, ms: clock.now() - started });
          else if (err instanceof KubeApiError && err.code === 410) finish({ kind: 'gone', message: err.message });
          else finish({ kind: 'error', err: err instanceof KubeApiError ? err : new KubeApiError(0, 'Unknown', String(err)) });
        },
      )
      .then((h) => {
        handle = h;
        if (settled) h.abort();
      });
  });
}
