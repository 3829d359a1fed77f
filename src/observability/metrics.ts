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
  readonly resyncs: Counter<never>;
  readonly restarts: Counter<never>;
  readonly ready: Gauge<never>;
  readonly diskBytes: Gauge<'container' | 'kind'>;
  private collectors: (() => void)[] = [];

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const collect = (): void => this.runCollectors();
    this.reconciles = new Counter({
      name: 'acetate_reconciles_total',
      help: 'Reconciles of one container key, by result (converged, error, requeued, skipped)',
      labelNames: ['result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'acetate_reconcile_errors_total',
      help: 'Reconciles that ended in an error, by retry decision (backoff, terminal)',
      labelNames: ['retry'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'acetate_reconcile_duration_seconds',
      help: 'Time to reconcile one key',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.actions = new Counter({
      name: 'acetate_actions_total',
      help: 'Actions carried out, by kind and outcome (outcome "error" for failures)',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.actionDuration = new Histogram({
      name: 'acetate_action_duration_seconds',
      help: 'Duration of actions, by kind and outcome',
      labelNames: ['kind', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.queueDepth = new Gauge({ name: 'acetate_queue_depth', help: 'Keys waiting in the work queue (ready to be processed)', registers, collect });
    this.queueRetries = new Gauge({
      name: 'acetate_queue_delayed',
      help: 'Keys waiting for a delayed retry (backoff, crash-loop restart)',
      registers,
      collect,
    });
    this.containers = new Gauge({ name: 'acetate_containers', help: 'Containers by phase', labelNames: ['phase'], registers, collect });
    this.invalidManifests = new Gauge({
      name: 'acetate_invalid_manifests',
      help: 'Manifest files (or objects) that currently fail to load or validate',
      registers,
      collect,
    });
    this.manifestConflicts = new Gauge({ name: 'acetate_manifest_conflicts', help: 'Container keys declared more than once', registers, collect });
    this.manifestProblems = new Gauge({
      name: 'acetate_manifest_problems',
      help: 'Current problems by origin (file) and kind (invalid, unreadable, conflict)',
      labelNames: ['origin', 'kind'],
      registers,
      collect,
    });
    this.sourceChanges = new Counter({
      name: 'acetate_source_changes_total',
      help: 'Change notifications from desired-state sources',
      labelNames: ['source'],
      registers,
    });
    this.resyncs = new Counter({ name: 'acetate_resyncs_total', help: 'Periodic full resyncs of actual state', registers });
    this.restarts = new Counter({ name: 'acetate_container_restarts_total', help: 'Restarts of exited processes under their restartPolicy', registers });
    this.ready = new Gauge({ name: 'acetate_ready', help: '1 after the first full sync of every source', registers, collect });
    this.diskBytes = new Gauge({
      name: 'acetate_container_disk_bytes',
      help: "A container's private-area filesystem (resources.disk), by kind: used, total",
      labelNames: ['container', 'kind'],
      registers,
      collect,
    });
    for (const p of PHASES) this.containers.set({ phase: p }, 0);
    this.invalidManifests.set(0);
    this.manifestConflicts.set(0);
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'acetate_' });
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
