/**
 * The publish step of a reconcile: what the loop knows of a container (its status, recent
 * actions, last error, crash-loop bookkeeping) as one StatusRecord, written to every sink (the
 * status store `acetate get` reads, the Kubernetes status writer); and the removal of a key that
 * exists nowhere any more (for the Kubernetes writer, the moment a finalizer may go).
 *
 * A sink that fails is not swallowed: the failure is returned, and the reconcile turns it into
 * its Requeue (contracts/errors.ts: a conflict is retried at once, a gone object is done...).
 */
import type { ContainerStatus, DesiredContainer, NormalizedSpec, Phase } from '../api/types.js';
import type { ActualContainer, DeferredResize } from '../runtime/runtime.js';
import { isDetailedSink, type StatusSink } from '../contracts/sinks.js';
import type { CrashLoopRecord, RecordedAction, StatusRecord, UnhealthyRecord, Waiting } from '../contracts/status-record.js';
import type { Logger } from '../contracts/logger.js';
import { messageOf } from '../contracts/errors.js';
import { computeStatus, formatResources, type ReconcileError } from './status.js';
import { originOfRef, problemsForKey, type MergedSnapshot } from './merge-sources.js';
import { networkSummary } from './network-status.js';
import { formatIdRange } from '../runtime/walls/id-pool.js';

const MAX_RECENT_ACTIONS = 10;

export type LastError = NonNullable<StatusRecord['lastError']>;

/** What one reconcile found and did, as far as its status is concerned. */
export interface PublishInput {
  desired?: DesiredContainer;
  actual?: ActualContainer;
  snap: MergedSnapshot;
  error?: ReconcileError;
  waiting?: Waiting;
  /** Why the plan left the key alone. */
  skipped?: string;
  deferred: DeferredResize[];
  /** Exit code of a run that ended, seen before this reconcile restarted it. */
  exitedBefore?: number;
  probe?: { ready: boolean; reason: string; message: string };
  /** See StatusInput.hostView. */
  hostView?: string;
  crashLoop?: CrashLoopRecord;
  /** A failed liveness (or startup) probe of the running process, not yet acted on. */
  unhealthy?: UnhealthyRecord;
  /** When the key's retry is due (epoch ms), if known. */
  retryAt?: number;
}

export interface Published {
  status?: ContainerStatus;
  /** The first sink failure; the other sinks were still written. */
  failure?: unknown;
}

export class StatusPublisher {
  private statuses = new Map<string, ContainerStatus>();
  /** The container (its createdAt) that statuses and recent actions of a key are about. */
  private incarnations = new Map<string, string>();
  private phaseOf = new Map<string, Phase>();
  private recent = new Map<string, RecordedAction[]>();
  private lastErrors = new Map<string, LastError>();

  constructor(
    private readonly sinks: StatusSink[],
    private readonly opts: { nodeName: string; now: () => number; logger: Logger },
  ) {}

  /** Takes up what a previous run published (stable lastTransitionTime, recent actions). */
  seed(records: StatusRecord[]): void {
    for (const r of records) {
      this.statuses.set(r.key, r.status);
      if (r.incarnation) this.incarnations.set(r.key, r.incarnation);
      if (r.recentActions) this.recent.set(r.key, r.recentActions);
    }
  }

  /** Keys with a status (to find those that exist nowhere any more). */
  keys(): string[] {
    return [...this.statuses.keys()];
  }

  phases(): ReadonlyMap<string, Phase> {
    return this.phaseOf;
  }

  allStatuses(): ReadonlyMap<string, ContainerStatus> {
    return this.statuses;
  }

  remember(key: string, a: RecordedAction): void {
    const list = this.recent.get(key) ?? [];
    list.push(a);
    while (list.length > MAX_RECENT_ACTIONS) list.shift();
    this.recent.set(key, list);
  }

  setError(key: string, e: LastError | undefined): void {
    if (e) this.lastErrors.set(key, e);
    else this.lastErrors.delete(key);
  }

  /** Computes the status of key, writes its record to every sink. */
  async publish(key: string, input: PublishInput): Promise<Published> {
    const { desired, actual, snap } = input;
    const isProtected = snap.protectedKeys.has(key);
    // A file-wide problem (e.g. a YAML syntax error, keys unknown) concerns the containers last
    // applied from that file, not those it still validly declares.
    const declaredIn = !desired && actual ? originOfRef(actual.applied.source, key) : undefined;
    const problems = problemsForKey(snap, key, declaredIn);
    const incarnation = actual?.applied.createdAt;
    const known = this.incarnations.get(key);
    if (incarnation && known && known !== incarnation) {
      // Destroyed and created again since: nothing of the earlier container's status carries over
      // (its pid, exit code, conditions), only the actions that made this one.
      this.statuses.delete(key);
      this.recent.set(
        key,
        (this.recent.get(key) ?? []).filter((a) => a.time >= incarnation),
      );
    }
    if (incarnation) this.incarnations.set(key, incarnation);
    const status = computeStatus({
      key,
      desired,
      actual,
      previous: this.statuses.get(key),
      error: input.error,
      problems,
      protectedKey: isProtected,
      waiting: input.waiting,
      deferred: input.deferred,
      lastExitCode: input.exitedBefore,
      pendingActions: input.skipped && !isProtected ? [`left alone: ${input.skipped}`] : [],
      node: this.opts.nodeName,
      probe: input.probe,
      ...(input.hostView ? { hostView: input.hostView } : {}),
      now: this.opts.now(),
    });
    this.statuses.set(key, status);
    if (status.phase) this.phaseOf.set(key, status.phase);
    const lastError = this.lastErrors.get(key);
    if (lastError && input.error && input.retryAt !== undefined) lastError.nextRetryAt = new Date(input.retryAt).toISOString();
    const record = this.record(key, { ...input, problems, status, incarnation, lastError });
    let failure: unknown;
    for (const sink of this.sinks) {
      try {
        if (isDetailedSink(sink)) await sink.publishDetailed(record);
        else await sink.publish(key, status);
      } catch (err) {
        this.opts.logger.warn('cannot publish status', { container: key, error: messageOf(err) });
        failure ??= err;
      }
    }
    return failure === undefined ? { status } : { status, failure };
  }

  /**
   * Forgets key and tells every detailed sink: for the kube status writer this is the moment a
   * terminating object's finalizer may go, even if the loop never published a status for it.
   * Returns the first failure.
   */
  async forget(key: string): Promise<unknown> {
    this.statuses.delete(key);
    this.incarnations.delete(key);
    this.phaseOf.delete(key);
    this.recent.delete(key);
    this.lastErrors.delete(key);
    let failure: unknown;
    for (const sink of this.sinks) {
      if (!isDetailedSink(sink)) continue;
      try {
        await sink.remove(key);
      } catch (err) {
        this.opts.logger.warn('cannot remove status', { container: key, error: messageOf(err) });
        failure ??= err;
      }
    }
    return failure;
  }

  private record(
    key: string,
    x: PublishInput & { problems: StatusRecord['problems']; status: ContainerStatus; incarnation?: string; lastError?: LastError },
  ): StatusRecord {
    const { desired, actual } = x;
    const record: StatusRecord = {
      key,
      ...(x.incarnation ? { incarnation: x.incarnation } : {}),
      namespace: desired?.namespace ?? actual?.namespace ?? key.split('/')[0] ?? 'default',
      name: desired?.name ?? actual?.name ?? key.split('/').slice(1).join('/'),
      status: x.status,
      problems: x.problems,
      recentActions: this.recent.get(key) ?? [],
      updatedAt: new Date(this.opts.now()).toISOString(),
    };
    const source = desired?.source ?? actual?.applied.source;
    if (source) record.source = source;
    if (desired) record.desired = desiredPart(desired.spec);
    if (actual) record.actual = actualPart(actual);
    if (x.lastError) record.lastError = x.lastError;
    if (x.waiting) record.waiting = x.waiting;
    if (x.crashLoop) record.crashLoop = x.crashLoop;
    if (x.unhealthy) record.unhealthy = x.unhealthy;
    return record;
  }
}

/** A desired spec in user units, as the status record holds it (also what `describe` shows of an applied spec). */
export function desiredPart(spec: NormalizedSpec): NonNullable<StatusRecord['desired']> {
  return {
    state: spec.state,
    template: spec.template,
    command: [...spec.command, ...spec.args],
    restartPolicy: spec.restartPolicy,
    resources: formatResources(spec.resources) ?? {},
  };
}

/** The node ids a container's root is, as `get -o wide` and `describe` show them. */
export function idsColumn(actual: Pick<ActualContainer, 'idRange' | 'applied'>): string {
  if (actual.idRange) return formatIdRange(actual.idRange);
  // hostUsers: false and no range yet (created before ranges were per container): its start assigns one.
  return actual.applied.spec.security.hostUsers === false ? 'own range at start' : 'node';
}

function actualPart(actual: ActualContainer): NonNullable<StatusRecord['actual']> {
  const out: NonNullable<StatusRecord['actual']> = {
    id: actual.id,
    state: actual.process.state,
    restartCount: actual.restartCount,
    limits: formatResources(actual.limits) ?? {},
    applied: { state: actual.applied.spec.state, resources: formatResources(actual.applied.spec.resources) ?? {} },
  };
  const p = actual.process;
  if (p.pid !== undefined) out.pid = p.pid;
  if (p.exitCode !== undefined) out.exitCode = p.exitCode;
  if (p.reason) out.reason = p.reason;
  if (p.unsupervised) out.unsupervised = p.unsupervised;
  if (p.startedAt) out.startedAt = p.startedAt;
  if (p.finishedAt) out.finishedAt = p.finishedAt;
  out.network = networkSummary(actual);
  if (actual.disk) out.disk = { ...actual.disk };
  out.ids = idsColumn(actual);
  return out;
}
