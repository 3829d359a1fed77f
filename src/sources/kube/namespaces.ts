/**
 * The labels of every Namespace (list, then watch from the list's resourceVersion), for the
 * security level of each namespace's Containers (pod-security.kubernetes.io/enforce|warn|audit).
 *
 * Small on purpose, beside the Container informer: namespaces are few and their labels change
 * rarely, so every failure — an ERROR event, 410 Gone, a dropped or failed watch, a list that
 * fails — is answered the same way, a fresh list after a backoff (1 s doubling to 30 s; a watch
 * that simply ended resumes at once). Until the first list the labels are unknown: the source
 * then applies the node's default level, which refuses (never destroys) what a label might have
 * allowed, and takes it back when the labels arrive (onChange names the namespaces that changed).
 */
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { realClock } from '../../contracts/clock.js';
import { messageOf } from '../../contracts/errors.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { backoffDelay } from '../../util/backoff.js';
import type { KubeApi, KubeNamespace, WatchHandle } from './client.js';

export interface NamespaceWatcherOptions {
  api: KubeApi;
  clock?: Clock;
  logger?: Logger;
  /** Namespaces whose labels changed (appeared, changed, went away). */
  onChange: (namespaces: string[]) => void;
  /** Server-side timeout of each watch; default 300 s. */
  watchTimeoutSeconds?: number;
}

type Labels = Readonly<Record<string, string>>;

export class NamespaceWatcher {
  private readonly labels = new Map<string, Labels>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private rv = '';
  private isSynced = false;
  private stopped = true;
  private failures = 0;
  private timer?: TimerHandle;
  private handle?: WatchHandle;
  private error?: string;
  private syncWaiters: (() => void)[] = [];

  constructor(private readonly opts: NamespaceWatcherOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
  }

  /** The labels of namespace; undefined until it has been seen. */
  labelsOf(namespace: string): Labels | undefined {
    return this.labels.get(namespace);
  }

  synced(): boolean {
    return this.isSynced;
  }

  lastError(): string | undefined {
    return this.error;
  }

  /** Resolves after the first list (or at once when stopped). */
  waitForSync(): Promise<void> {
    if (this.isSynced || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.list();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.handle?.abort();
    this.handle = undefined;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) fn();
    }, ms);
  }

  private failed(what: string, err: unknown): void {
    this.failures += 1;
    const delay = backoffDelay(this.failures, { baseMs: 1000, maxMs: 30_000 });
    this.error = `${what}: ${messageOf(err)}`;
    this.log.warn(`namespaces: ${this.error}; listing again in ${Math.round(delay / 1000)} s (until then a Container's level is its node's default)`);
    this.schedule(() => void this.list(), delay);
  }

  private async list(): Promise<void> {
    let list: { items: KubeNamespace[]; resourceVersion: string };
    try {
      list = await this.opts.api.listNamespaces();
    } catch (err) {
      this.failed('cannot list namespaces', err);
      return;
    }
    if (this.stopped) return;
    const seen = new Set<string>();
    const changed: string[] = [];
    for (const n of list.items) {
      if (!n.metadata.name) continue;
      seen.add(n.metadata.name);
      if (this.put(n.metadata.name, n.metadata.labels ?? {})) changed.push(n.metadata.name);
    }
    for (const name of [...this.labels.keys()])
      if (!seen.has(name)) {
        this.labels.delete(name);
        changed.push(name);
      }
    this.rv = list.resourceVersion;
    this.failures = 0;
    this.error = undefined;
    if (!this.isSynced) {
      this.isSynced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    if (changed.length) this.tell(changed);
    void this.watch();
  }

  /** Stores labels; true when they changed. */
  private put(name: string, labels: Record<string, string>): boolean {
    const before = this.labels.get(name);
    const next = Object.freeze({ ...labels });
    this.labels.set(name, next);
    return !before || JSON.stringify(Object.entries(before).sort()) !== JSON.stringify(Object.entries(next).sort());
  }

  private tell(namespaces: string[]): void {
    try {
      this.opts.onChange(namespaces);
    } catch (err) {
      this.log.error(`namespaces: onChange failed: ${messageOf(err)}`);
    }
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let ended = false;
    let broken: string | undefined;
    const started = this.clock.now();
    const handle = await this.opts.api.watchNamespaces(
      { resourceVersion: this.rv, timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300 },
      (type, raw) => {
        if (ended || this.stopped || broken) return;
        const meta = (raw.metadata ?? {}) as { name?: unknown; resourceVersion?: unknown; labels?: unknown };
        if (type === 'ERROR') {
          broken = `watch error: ${String(raw.message ?? raw.reason ?? 'unknown')}`;
          this.handle?.abort();
          return;
        }
        if (typeof meta.resourceVersion === 'string') this.rv = meta.resourceVersion;
        if (type === 'BOOKMARK' || typeof meta.name !== 'string') return;
        if (type === 'DELETED') {
          if (this.labels.delete(meta.name)) this.tell([meta.name]);
          return;
        }
        const labels = meta.labels && typeof meta.labels === 'object' ? (meta.labels as Record<string, string>) : {};
        if (this.put(meta.name, labels)) this.tell([meta.name]);
      },
      (err) => {
        if (ended) return;
        ended = true;
        this.handle = undefined;
        if (this.stopped) return;
        if (broken) this.failed('namespace watch ended', new Error(broken));
        else if (err) this.failed('namespace watch failed', err);
        else if (this.clock.now() - started < 1000) this.failed('namespace watch ended at once', new Error('closed by the server'));
        else void this.watch(); // the server's timeout: resume from the last resourceVersion
      },
    );
    if (ended || this.stopped) handle.abort();
    else this.handle = handle;
  }
}
