/**
 * KubeSource: desired state from the Container objects of this node (a DesiredSource), plus the
 * write-back the loop publishes to (statusSink: a StatusSink, eventRecorder: an EventRecorder) and
 * the finalizer flow.
 *
 * snapshot():
 * - containers: objects naming this node, valid, carrying the acetate.dev/cleanup finalizer;
 * - protectedKeys: invalid or infeasible objects (with a problem each), and objects still waiting
 *   for their finalizer: their containers are left exactly as they are;
 * - objects being deleted are in neither: the loop destroys their container, then
 *   onKeyConverged(key, { actualExists: false }) (or the actualExists callback) lets the finalizer go;
 * - complete: a complete list has been seen and no 410 re-list is under way.
 *
 * onChange gets the keys whose desired state may have changed: a status write (which changes
 * only resourceVersion and status) does not wake the loop; a re-list or a periodic resync gives 'all'.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { DesiredContainer } from '../../api/types.js';
import { canonicalJson } from '../../api/hash.js';
import type { DesiredSnapshot, DesiredSource, SourceProblem } from '../../contracts/source.js';
import type { Clock } from '../../contracts/clock.js';
import type { EventRecorder, StatusSink } from '../../contracts/sinks.js';
import type { Runtime } from '../../runtime/runtime.js';
import { realClock } from '../../contracts/clock.js';
import { createKubeApi, type KubeApi, type KubeContainer } from './client.js';
import { loadKubeConfig } from './config.js';
import { convertObject, detectNodeCapacity, originOfKey, type Conversion, type NodeCapacity } from './desired.js';
import { KubeEventRecorder, type KubeEventRecorderOptions } from './events.js';
import { FinalizerManager, hasFinalizer, type FinalizerOptions } from './finalizer.js';
import { ContainerInformer, type InformerEvent, type InformerOptions } from './informer.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import type { SelectorMode } from './node-selector.js';
import { KubeStatusWriter, type KeyVerdict, type KubeStatusWriterOptions } from './status-writer.js';

export interface KubeSourceOptions {
  /** This node's name (--node / $NODE_NAME). */
  node: string;
  /** The API to use; default: one over kubeConfig. */
  api?: KubeApi;
  /** Default: loadKubeConfig({ kubeconfig, context }). */
  kubeConfig?: KubeConfig;
  kubeconfig?: string;
  context?: string;
  /** Server-side selection of this node's objects; default 'auto' (field, falling back to label). */
  selector?: SelectorMode;
  /** Largest resources the node can give; false to not check. Default: detected from the OS. */
  capacity?: NodeCapacity | false;
  /**
   * Whether the runtime still has a container for key (e.g. `async (k) => !!(await runtime.get(k))`).
   * Lets the finalizer go without the loop calling onKeyConverged. Throws when it cannot tell.
   */
  actualExists?: (key: string) => Promise<boolean>;
  /** Shorthand for actualExists: asks runtime.get(key). */
  runtime?: Pick<Runtime, 'get'>;
  clock?: Clock;
  logger?: Logger;
  informer?: Omit<InformerOptions, 'api' | 'node' | 'clock' | 'logger' | 'selector'>;
  finalizer?: Pick<FinalizerOptions, 'backoff' | 'sweepIntervalMs'>;
  events?: Pick<KubeEventRecorderOptions, 'burst' | 'refillMs' | 'dedupWindowMs' | 'maxQueue'>;
  status?: Pick<KubeStatusWriterOptions, 'backoff' | 'maxConflicts'>;
  /** start() resolves only after the first complete list. Default true. */
  waitForSync?: boolean;
}

interface Memo {
  rv: string | undefined;
  conv: Conversion;
}

export class KubeSource implements DesiredSource {
  readonly name: string;
  readonly node: string;
  readonly api: KubeApi;
  readonly informer: ContainerInformer;
  /** Register with the loop as a StatusSink. */
  readonly statusSink: KubeStatusWriter;
  /** Register with the loop as an EventRecorder. */
  readonly eventRecorder: KubeEventRecorder;
  readonly finalizers: FinalizerManager;
  private readonly log: Logger;
  private readonly capacity: NodeCapacity | false;
  private readonly memo = new Map<string, Memo>();
  private readonly fingerprints = new Map<string, string>();
  private cached?: DesiredSnapshot & { incompleteReason?: string };
  private onChange?: (keys: string[] | 'all') => void;
  private readonly waitOnStart: boolean;

  constructor(opts: KubeSourceOptions) {
    this.node = opts.node;
    this.name = `kube:${opts.node}`;
    this.waitOnStart = opts.waitForSync ?? true;
    this.log = opts.logger ?? silentLogger;
    const clock = opts.clock ?? realClock;
    this.api = opts.api ?? createKubeApi(opts.kubeConfig ?? loadKubeConfig({ kubeconfig: opts.kubeconfig, context: opts.context }));
    this.capacity = opts.capacity === undefined ? detectNodeCapacity() : opts.capacity;
    this.informer = new ContainerInformer({ ...opts.informer, api: this.api, node: opts.node, clock, logger: this.log, selector: opts.selector });
    const lookup = (key: string): KubeContainer | undefined => this.informer.get(key);
    this.finalizers = new FinalizerManager({
      ...opts.finalizer,
      api: this.api,
      lookup,
      actualExists: opts.actualExists ?? (opts.runtime ? async (key) => (await opts.runtime!.get(key)) !== undefined : undefined),
      clock,
      logger: this.log,
      onChange: (key) => this.changed([key]),
    });
    this.statusSink = new KubeStatusWriter({
      ...opts.status,
      api: this.api,
      lookup,
      verdict: (k) => this.verdict(k),
      onConverged: (k) => this.onKeyConverged(k, { actualExists: false }),
      clock,
      logger: this.log,
    });
    this.eventRecorder = new KubeEventRecorder({ ...opts.events, api: this.api, node: opts.node, lookup, clock, logger: this.log });
    this.informer.on((e) => this.handle(e));
  }

  /**
   * Starts the informer and resolves after the first complete list (as the file source resolves
   * after its first scan), so the loop's first sync includes the objects. While the API server
   * cannot be reached this keeps retrying with backoff (logged); nothing is created or destroyed
   * from this source meanwhile. With waitForSync: false it resolves at once.
   */
  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.onChange = onChange;
    this.finalizers.start();
    this.informer.start();
    if (this.waitOnStart) await this.informer.waitForSync();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
    await this.finalizers.stop();
    await this.statusSink.flush();
    this.statusSink.close();
    await this.eventRecorder.close();
  }

  synced(): boolean {
    return this.informer.synced();
  }

  /** The sinks to give the loop (ControllerOptions.statusSinks). */
  sinks(): StatusSink[] {
    return [this.statusSink];
  }

  /** The recorders to give the loop (ControllerOptions.recorders). */
  recorders(): EventRecorder[] {
    return [this.eventRecorder];
  }

  /** Resolves after the first complete list. */
  waitForSync(): Promise<void> {
    return this.informer.waitForSync();
  }

  /** For /readyz and logs. */
  health(): { synced: boolean; complete: boolean; selector?: string; lastError?: string } {
    const h: { synced: boolean; complete: boolean; selector?: string; lastError?: string } = {
      synced: this.informer.synced(),
      complete: this.informer.complete(),
    };
    const sel = this.informer.selectorInUse();
    if (sel) h.selector = sel;
    const err = this.informer.lastError();
    if (err) h.lastError = err.message;
    return h;
  }

  /**
   * To call after reconciling a key that is not desired: when the key's object is being deleted
   * and the container is gone (actualExists false), the finalizer is removed. The loop reaches it
   * through statusSink.remove(key) (DetailedStatusSink), so it needs no change to call it.
   */
  onKeyConverged(key: string, state: { actualExists: boolean }): void {
    this.finalizers.converged(key, state);
  }

  /** The desired state; incompleteReason says why it is incomplete (shown by the loop and acetate get). */
  snapshot(): DesiredSnapshot & { incompleteReason?: string } {
    if (this.cached && this.cached.complete === this.informer.complete()) return this.cached;
    const containers = new Map<string, DesiredContainer>();
    const protectedKeys = new Set<string>();
    const problems: SourceProblem[] = [];
    for (const obj of this.informer.list()) {
      const conv = this.convert(obj);
      switch (conv.kind) {
        case 'desired': {
          if (hasFinalizer(obj)) {
            containers.set(conv.key, conv.desired);
            break;
          }
          protectedKeys.add(conv.key);
          const err = this.finalizers.addError(conv.key);
          if (err) problems.push({ origin: originOfKey(conv.key), message: err, keys: [conv.key], kind: 'unreadable' });
          break;
        }
        case 'invalid':
          protectedKeys.add(conv.key);
          problems.push(conv.problem);
          break;
        case 'terminating':
        case 'foreign':
          break;
      }
    }
    const complete = this.informer.complete();
    const snap: DesiredSnapshot & { incompleteReason?: string } = { containers, protectedKeys, problems, complete };
    if (!complete) {
      const err = this.informer.lastError();
      snap.incompleteReason = this.informer.synced()
        ? `re-listing the Containers of node ${this.node} after the watch history expired (410)${err ? `: ${err.message}` : ''}`
        : `the Containers of node ${this.node} have not been listed yet${err ? `: ${err.message}` : ''}`;
    }
    this.cached = snap;
    return snap;
  }

  // ------------------------------------------------------------------ internals

  private convert(obj: KubeContainer): Conversion {
    const key = `${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`;
    const m = this.memo.get(key);
    if (m && m.rv === obj.metadata.resourceVersion && obj.metadata.resourceVersion !== undefined) return m.conv;
    const conv = convertObject(obj, { node: this.node, capacity: this.capacity });
    this.memo.set(key, { rv: obj.metadata.resourceVersion, conv });
    return conv;
  }

  private verdict(key: string): KeyVerdict | undefined {
    const obj = this.informer.get(key);
    if (!obj) return undefined;
    const conv = this.convert(obj);
    if (conv.kind !== 'invalid') return undefined;
    return { rejectedGeneration: conv.generation, infeasible: conv.infeasible, message: conv.problem.message };
  }

  private fingerprint(key: string): string {
    const obj = this.informer.get(key);
    if (!obj) return 'gone';
    const conv = this.convert(obj);
    const fin = hasFinalizer(obj) ? 'F' : '-';
    const err = this.finalizers.addError(key) ?? '';
    switch (conv.kind) {
      case 'desired':
        return `desired|${fin}|${obj.metadata.uid}|${conv.desired.source.kind === 'kube' ? conv.desired.source.generation : ''}|${canonicalJson(conv.desired.spec)}|${err}`;
      case 'invalid':
        return `invalid|${fin}|${conv.generation}|${conv.problem.field}|${conv.problem.message}`;
      case 'terminating':
        return `terminating`;
      case 'foreign':
        return `foreign|${conv.nodeName}`;
    }
  }

  /** Hands objects of this node to the finalizer manager (never foreign ones). */
  private observe(obj: KubeContainer): void {
    const conv = this.convert(obj);
    if (conv.kind === 'foreign') return;
    if (conv.kind === 'invalid' && (obj.spec as { nodeName?: unknown } | undefined)?.nodeName !== this.node) return;
    this.finalizers.observe(obj);
  }

  private changed(keys: string[] | 'all'): void {
    this.cached = undefined;
    if (keys !== 'all') {
      const moved = keys.filter((k) => {
        const fp = this.fingerprint(k);
        if (this.fingerprints.get(k) === fp) return false;
        if (fp === 'gone') this.fingerprints.delete(k);
        else this.fingerprints.set(k, fp);
        return true;
      });
      if (!moved.length) return;
      keys = moved;
    } else {
      this.fingerprints.clear();
      for (const k of this.informer.keys()) this.fingerprints.set(k, this.fingerprint(k));
    }
    try {
      this.onChange?.(keys);
    } catch (err) {
      this.log.error(`onChange failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  private handle(e: InformerEvent): void {
    switch (e.kind) {
      case 'relisted': {
        const live = new Set(this.informer.keys());
        for (const k of [...this.memo.keys()]) if (!live.has(k)) this.memo.delete(k);
        for (const k of e.keys) {
          if (!live.has(k)) {
            this.statusSink.forget(k);
            this.finalizers.forget(k);
          }
        }
        for (const obj of this.informer.list()) this.observe(obj);
        this.changed('all');
        break;
      }
      case 'upsert':
        this.observe(e.obj);
        this.changed([e.key]);
        break;
      case 'delete':
        this.memo.delete(e.key);
        this.statusSink.forget(e.key);
        this.finalizers.forget(e.key);
        this.changed([e.key]);
        break;
      case 'resync':
        this.finalizers.sweep();
        this.changed('all');
        break;
      case 'complete':
        this.cached = undefined;
        break;
    }
  }
}

/** Builds the Kubernetes source for `acetate run --kube`. */
export function createKubeSource(opts: KubeSourceOptions): KubeSource {
  return new KubeSource(opts);
}
