/**
 * Prometheus metrics of the loop (prom-client), on a registry of their own so several controllers
 * (tests) do not collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ContainerStatus, Phase } from '../api/types.js';

export interface MetricsOptions {
  /** Include process metrics (cpu, memory, fds, event loop lag). Default true. */
  defaultMetrics?: boolean;
}

export const PHASES: readonly Phase[] = ['Pending', 'Running', 'Stopped', 'Failed', 'Unknown'];

export class Metrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileErrors: Counter<'retry'>;
  readonly reconcileDuration: Histogram<never>;
  readonly actions: Counter<'kind' | 'outcome'>;
  readonly actionDuration: Histogram<'kind' | 'outcome'>;
  readonly queueDepth: Gauge<never>;
  readonly queueRetries: Gauge<never>;
  readonly containers: Gauge<'phase'>;
  readonly invalidManifests: Gauge<never>;
  readonly manifestConflicts: Gauge<never>;
  readonly manifestProblems: Gauge<'origin' | 'kind'>;
  readonly sourceChanges: Counter<'source'>;
  readonly plansForAskers: Counter<'answer'>;
  /** 1 for the revision (commit) each Git source applies. */
  readonly sourceRevision: Gauge<'source' | 'revision'>;
  readonly resyncs: Counter<never>;
  readonly restarts: Counter<never>;
  readonly ready: Gauge<never>;
  readonly diskBytes: Gauge<'container' | 'kind'>;
  private collectors: (() => void)[] = [];

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const collect = (): void => this.runCollectors();
    // Gauges are set from the loop's state just before a scrape (collect); counters as things happen.
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> => new Counter({ name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> => new Gauge({ name, help, labelNames, registers, collect });
    const histogram = <L extends string>(name: string, help: string, buckets: number[], labelNames: L[] = []): Histogram<L> =>
      new Histogram({ name, help, buckets, labelNames, registers });

    this.reconciles = counter('acetate_reconciles_total', 'Reconciles of one container key, by result (converged, error, requeued, skipped)', ['result']);
    this.reconcileErrors = counter('acetate_reconcile_errors_total', 'Reconciles that ended in an error, by retry decision (backoff, terminal)', ['retry']);
    this.reconcileDuration = histogram(
      'acetate_reconcile_duration_seconds',
      'Time to reconcile one key',
      [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    );
    this.actions = counter('acetate_actions_total', 'Actions carried out, by kind and outcome (outcome "error" for failures)', ['kind', 'outcome']);
    this.actionDuration = histogram(
      'acetate_action_duration_seconds',
      'Duration of actions, by kind and outcome',
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      ['kind', 'outcome'],
    );
    this.queueDepth = gauge('acetate_queue_depth', 'Keys waiting in the work queue (ready to be processed)');
    this.queueRetries = gauge('acetate_queue_delayed', 'Keys waiting for a delayed retry (backoff, crash-loop restart)');
    this.containers = gauge('acetate_containers', 'Containers by phase', ['phase']);
    this.invalidManifests = gauge('acetate_invalid_manifests', 'Manifest files (or objects) that currently fail to load or validate');
    this.manifestConflicts = gauge('acetate_manifest_conflicts', 'Container keys declared more than once');
    this.manifestProblems = gauge('acetate_manifest_problems', 'Current problems by origin (file) and kind (invalid, unreadable, conflict)', [
      'origin',
      'kind',
    ]);
    this.sourceChanges = counter('acetate_source_changes_total', 'Change notifications from desired-state sources', ['source']);
    this.plansForAskers = counter(
      'acetate_plans_for_askers_total',
      '`acetate plan -f DIR` asks of the loop, by answer (planned; declined or failed: the asker plans itself)',
      ['answer'],
    );
    this.sourceRevision = new Gauge({
      name: 'acetate_source_revision_info',
      help: 'The revision (Git commit, full hash) a source applies: 1 for the current one',
      labelNames: ['source', 'revision'],
      registers,
    });
    this.resyncs = counter('acetate_resyncs_total', 'Periodic full resyncs of actual state');
    this.restarts = counter('acetate_container_restarts_total', 'Restarts of exited processes under their restartPolicy');
    this.ready = gauge('acetate_ready', '1 after the first full sync of every source');
    this.diskBytes = gauge('acetate_container_disk_bytes', "A container's private-area filesystem (resources.disk), by kind: used, total", [
      'container',
      'kind',
    ]);
    for (const p of PHASES) this.containers.set({ phase: p }, 0);
    this.invalidManifests.set(0);
    this.manifestConflicts.set(0);
    // The event-loop lag histogram samples on a libuv timer: at prom-client's default 10 ms that
    // alone woke an idle `acetate run` 200 times a second (~8 ms of CPU per second, issue 25).
    // Once a second is plenty for a loop whose work is reconciles of tens of milliseconds.
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'acetate_', eventLoopMonitoringPrecision: 1000 });
  }

  /** fn runs before every scrape (to set gauges from the loop's state). */
  addCollector(fn: () => void): void {
    this.collectors.push(fn);
  }

  private runCollectors(): void {
    for (const fn of this.collectors) {
      try {
        fn();
      } catch {
        // a failing collector must not break the scrape
      }
    }
  }

  /** Sets the per-phase container gauge from a count per phase. */
  setPhases(counts: Map<Phase, number>): void {
    for (const p of PHASES) this.containers.set({ phase: p }, counts.get(p) ?? 0);
  }

  /** acetate_container_disk_bytes from the loop's last status of each container. */
  setDiskUsage(statuses: ReadonlyMap<string, ContainerStatus>): void {
    this.diskBytes.reset();
    for (const [key, st] of statuses) {
      if (!st.disk) continue;
      this.diskBytes.set({ container: key, kind: 'used' }, st.disk.usedBytes);
      this.diskBytes.set({ container: key, kind: 'total' }, st.disk.totalBytes);
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
