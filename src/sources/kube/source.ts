/**
 * KubeSource: desired state from the Container objects of this node (a DesiredSource), plus the
 * write-back the loop does as steps of its reconcile: sinks() (the finalizer writer, then the
 * status writer) and recorders() (Kubernetes Events).
 *
 * snapshot() (see NodeObjects):
 * - containers: objects naming this node, valid, carrying the acetate.dev/cleanup finalizer;
 * - protectedKeys: invalid or infeasible objects (with a problem each), and objects still waiting
 *   for their finalizer: their containers are left exactly as they are (the loop's reconcile of
 *   such a key adds the finalizer);
 * - objects being deleted are in neither: the loop destroys their container, then, finding
 *   neither desired nor actual, calls the sinks' remove(key), which lets the finalizer go;
 * - complete: a complete list has been seen and no 410 re-list is under way.
 *
 * onChange gets the keys whose desired state may have changed: a status write (which changes
 * only resourceVersion and status) does not wake the loop; a re-list or a periodic resync gives
 * 'all', and then the keys of objects being deleted (which 'all' — desired, protected and actual
 * keys — does not cover once their container is gone), so that their finalizer goes.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { DesiredSnapshot, DesiredSource } from '../../contracts/source.js';
import type { Clock } from '../../contracts/clock.js';
import type { EventRecorder, StatusSink } from '../../contracts/sinks.js';
import { realClock } from '../../contracts/clock.js';
import { createKubeApi, type KubeApi } from './client.js';
import { loadKubeConfig } from './config.js';
import { detectNodeCapacity, type NodeCapacity } from './desired.js';
import { KubeEventRecorder, type KubeEventRecorderOptions } from './events.js';
import { FinalizerWriter } from './finalizer.js';
import { ContainerInformer } from './informer.js';
import type { InformerEvent, InformerOptions } from './informer-types.js';
import { LatestObjects } from './latest-objects.js';
import { NodeObjects, type SecurityContextOf } from './node-objects.js';
import { NamespaceWatcher } from './namespaces.js';
import { levelFor, type NodeSecurity } from '../../policy/node-levels.js';
import { levelLabel, namespaceLevels } from '../../policy/namespace-labels.js';
import type { SecurityLevel, SecurityViolation } from '../../policy/levels.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import type { SelectorMode } from './node-selector.js';
import { KubeStatusWriter } from './status-writer.js';

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
  clock?: Clock;
  logger?: Logger;
  informer?: Omit<InformerOptions, 'api' | 'node' | 'clock' | 'logger' | 'selector'>;
  events?: Pick<KubeEventRecorderOptions, 'burst' | 'refillMs' | 'dedupWindowMs' | 'maxQueue'>;
  /** start() resolves only after the first complete list. Default true. */
  waitForSync?: boolean;
}

export class KubeSource implements DesiredSource {
  readonly name: string;
  readonly node: string;
  readonly api: KubeApi;
  readonly informer: ContainerInformer;
  /** Writes status (a sink of the loop). */
  readonly statusSink: KubeStatusWriter;
  /** Adds and removes the finalizer (a sink of the loop). */
  readonly finalizers: FinalizerWriter;
  /** Register with the loop as an EventRecorder. */
  readonly eventRecorder: KubeEventRecorder;
  private readonly log: Logger;
  private readonly objects: LatestObjects;
  private readonly view: NodeObjects;
  private readonly fingerprints = new Map<string, string>();
  private cached?: DesiredSnapshot & { incompleteReason?: string };
  private onChange?: (keys: string[] | 'all') => void;
  private readonly waitOnStart: boolean;
  /** Namespace labels (the security levels), when the node enforces levels (capacity.security). */
  readonly namespaces?: NamespaceWatcher;

  /** What each namespace may mount at a start, by its labels (undefined: the node enforces no levels). */
  hostPathRules(sec: NodeSecurity): ReturnType<typeof kubeHostPathRules> | undefined {
    return this.namespaces ? kubeHostPathRules(sec, this.namespaces) : undefined;
  }

  constructor(opts: KubeSourceOptions) {
    this.node = opts.node;
    this.name = `kube:${opts.node}`;
    this.waitOnStart = opts.waitForSync ?? true;
    this.log = opts.logger ?? silentLogger;
    const clock = opts.clock ?? realClock;
    this.api = opts.api ?? createKubeApi(opts.kubeConfig ?? loadKubeConfig({ kubeconfig: opts.kubeconfig, context: opts.context }));
    this.informer = new ContainerInformer({ ...opts.informer, api: this.api, node: opts.node, clock, logger: this.log, selector: opts.selector });
    const lookup = (key: string) => this.informer.get(key);
    this.objects = new LatestObjects(this.api, lookup);
    const capacity = opts.capacity === undefined ? detectNodeCapacity() : opts.capacity;
    const security = capacity ? capacity.security : undefined;
    if (security) {
      this.namespaces = new NamespaceWatcher({
        api: this.api,
        clock,
        logger: this.log,
        onChange: (names) => {
          const prefixes = names.map((n) => `${n}/`);
          const keys = this.informer.keys().filter((k) => prefixes.some((p) => k.startsWith(p)));
          if (keys.length) this.changed(keys);
        },
      });
    }
    this.view = new NodeObjects({
      node: opts.node,
      capacity,
      get: lookup,
      list: () => this.informer.list(),
      addError: (key) => this.finalizers.addError(key),
      ...(security && this.namespaces
        ? { security: securityOf(security, this.namespaces), onAdvisory: (key, mode, level, found) => this.advise(key, mode, level, found) }
        : {}),
    });
    this.finalizers = new FinalizerWriter({
      api: this.api,
      objects: this.objects,
      isOurs: (o) => this.view.isOurs(o),
      onAddErrorChange: (key) => this.changed([key]),
      logger: this.log,
    });
    this.statusSink = new KubeStatusWriter({ api: this.api, objects: this.objects, verdict: (k) => this.view.verdict(k), clock, logger: this.log });
    this.eventRecorder = new KubeEventRecorder({ ...opts.events, api: this.api, node: opts.node, lookup, clock, logger: this.log });
    this.informer.on((e) => this.handle(e));
  }

  /**
   * Starts the informer and resolves after the first complete list (as the file source resolves
   * after its first scan), so the loop's first sync includes the objects. While the API server
   * cannot be reached the informer keeps retrying with backoff (logged); nothing is created or
   * destroyed from this source meanwhile. With waitForSync: false it resolves at once.
   */
  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.onChange = onChange;
    this.namespaces?.start();
    this.informer.start();
    if (this.waitOnStart) {
      await this.informer.waitForSync();
      // The labels too, so that the first sync judges each Container by its namespace's level.
      await this.namespaces?.waitForSync();
    }
  }

  async stop(): Promise<void> {
    this.namespaces?.stop();
    await this.informer.stop();
    await this.eventRecorder.close();
  }

  synced(): boolean {
    return this.informer.synced();
  }

  /** The sinks to give the loop (ControllerOptions.statusSinks): the finalizer first, so a new object is protected before anything else. */
  sinks(): StatusSink[] {
    return [this.finalizers, this.statusSink];
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

  /** The desired state; incompleteReason says why it is incomplete (shown by the loop and acetate get). */
  snapshot(): DesiredSnapshot & { incompleteReason?: string } {
    const complete = this.informer.complete();
    if (this.cached && this.cached.complete === complete) return this.cached;
    const snap: DesiredSnapshot & { incompleteReason?: string } = this.view.snapshot(complete);
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

  /** warn: a Warning event on the Container; audit: a log line (Kubernetes writes it to its audit log). */
  private advise(key: string, mode: 'warn' | 'audit', level: SecurityLevel, found: SecurityViolation[]): void {
    const text = `would be forbidden by security level ${level} (${levelLabel(mode)}): ${found.map((v) => `${v.field}: rule ${v.rule}`).join('; ')}`;
    if (mode === 'audit') {
      this.log.warn(`audit: ${key}: ${text}`, { container: key, securityLevel: level, rules: found.map((v) => v.rule).join(',') });
      return;
    }
    try {
      this.eventRecorder.record(key, { type: 'Warning', reason: 'SecurityLevelWarning', message: text });
    } catch (err) {
      this.log.warn('event recorder failed', { error: (err as Error).message });
    }
  }

  private changed(keys: string[] | 'all'): void {
    this.cached = undefined;
    if (keys !== 'all') {
      const moved = keys.filter((k) => {
        const fp = this.view.fingerprint(k);
        if (this.fingerprints.get(k) === fp) return false;
        if (fp === 'gone') this.fingerprints.delete(k);
        else this.fingerprints.set(k, fp);
        return true;
      });
      if (!moved.length) return;
      keys = moved;
    } else {
      this.fingerprints.clear();
      for (const k of this.informer.keys()) this.fingerprints.set(k, this.view.fingerprint(k));
    }
    this.tell(keys);
    if (keys === 'all') {
      const terminating = this.view.terminatingKeys();
      if (terminating.length) this.tell(terminating);
    }
  }

  private tell(keys: string[] | 'all'): void {
    try {
      this.onChange?.(keys);
    } catch (err) {
      this.log.error(`onChange failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  private forget(key: string): void {
    this.view.forget(key);
    this.objects.forget(key);
    this.finalizers.forget(key);
  }

  private handle(e: InformerEvent): void {
    switch (e.kind) {
      case 'relisted': {
        const live = new Set(this.informer.keys());
        this.view.retain(live);
        for (const k of e.keys) if (!live.has(k)) this.forget(k);
        this.changed('all');
        break;
      }
      case 'upsert':
        this.changed([e.key]);
        break;
      case 'delete':
        this.forget(e.key);
        this.changed([e.key]);
        break;
      case 'resync':
        this.changed('all');
        break;
      case 'complete':
        this.cached = undefined;
        break;
    }
  }
}

/** The rules of hostPaths at a start in Kubernetes mode: the namespace's enforced level, from its labels (runtime setHostPathRules). */
export function kubeHostPathRules(
  sec: NodeSecurity,
  ns: NamespaceWatcher,
): (namespace: string) => { level: SecurityContextOf['levels']['enforce']; allowedHostPaths: readonly string[]; why: string } {
  const of = securityOf(sec, ns);
  return (namespace) => {
    const s = of(namespace);
    return { level: s.levels.enforce, allowedHostPaths: s.policy.allowedHostPaths, why: s.why };
  };
}

/** Builds the Kubernetes source for `acetate run --kube`. */
export function createKubeSource(opts: KubeSourceOptions): KubeSource {
  return new KubeSource(opts);
}

/** The levels of a namespace: its labels, else the node's setting for it (see namespace-labels.ts). */
function securityOf(sec: NodeSecurity, ns: NamespaceWatcher): (namespace: string) => SecurityContextOf {
  return (namespace) => {
    const labels = ns.labelsOf(namespace);
    const fallback = levelFor(sec, namespace);
    const levels = namespaceLevels(labels, fallback);
    const enforce = labels?.[levelLabel('enforce')];
    const why =
      enforce !== undefined
        ? `namespace ${namespace}: label ${levelLabel('enforce')}=${enforce}`
        : `namespace ${namespace}${labels ? ' has no ' + levelLabel('enforce') + ' label' : ' not seen yet'}: ${sec.origin}`;
    return { levels, policy: sec.policy, why };
  };
}
