/**
 * The prober: Kubernetes' startup, readiness and liveness probes for running containers, on timers
 * of its own (an injected clock), beside the reconcile loop rather than in it.
 *
 * - The loop calls sync(key, actual) after each reconcile: probe workers follow the running
 *   process (identified by pid and start time; a restart starts them afresh) and the probes of its
 *   applied spec. forget(key) and stop() end them.
 * - Each worker runs its check every periodSeconds, the first one initialDelaySeconds after the
 *   process started, with at most one check in flight (as the kubelet's worker per probe). A check
 *   is never awaited by the loop, so many probes, or slow ones, never hold a reconcile.
 * - Checks start under a node-wide cap, fair across containers, that a slow check gives back
 *   after a second (fair-limiter.ts): one container's hanging checks never hold another's.
 *   forget() and stop() abort the checks in flight (their processes are killed), so a container
 *   gone or an acetate stopping never waits for a check's timeoutSeconds.
 * - Results are counted as Kubernetes does: successThreshold consecutive successes make a probe
 *   pass, failureThreshold consecutive failures make it fail. Until the startup probe passes, the
 *   others do not run and the container is not ready. Readiness starts as not ready.
 * - What the loop must act on only enqueues the key (onChange): readiness flipped, startup passed,
 *   or a liveness (or startup) probe failed. The loop then reads verdict() for the Ready condition
 *   and failure(): a fact its plan weighs (plan/probe-kill.ts), which kills that process; once
 *   it is gone (sync sees another process, or none) the failure goes with its workers.
 */
import { canonicalJson } from '../../api/hash.js';
import type { NormalizedProbe, ProbeKind } from '../../api/types.js';
import type { ActualContainer, Runtime } from '../../runtime/runtime.js';
import type { Clock, TimerHandle } from '../../contracts/clock.js';
import { runCheck, type CheckTools, type ProbeOutcome } from './check.js';
import { FairLimiter } from './fair-limiter.js';
import { probeHash, type ProbeFailure } from '../../plan/probe-kill.js';

export type { ProbeFailure };

export interface ProberOptions {
  runtime: Runtime;
  clock: Clock;
  /** A key's probe state changed in a way the loop must see. */
  onChange: (key: string) => void;
  /** Checks starting at once across all containers (fair-limiter.ts). Default 8. */
  concurrency?: number;
  /** A check still running after this long gives its slot back and runs on. Default 1000 ms. */
  releaseSlotAfterMs?: number;
  /** Binaries for network checks inside a container's namespace (resolved lazily). */
  tools: () => Promise<CheckTools>;
  /** For tests: replaces runCheck. */
  check?: typeof runCheck;
}

/** What the Ready condition says about a running container with probes. */
export interface ProbeVerdict {
  ready: boolean;
  reason: 'StartupProbe' | 'ReadinessProbe' | 'ProbesPassed';
  message: string;
}

interface Worker {
  kind: ProbeKind;
  probe: NormalizedProbe;
  timer?: TimerHandle;
  successes: number;
  failures: number;
  last?: ProbeOutcome;
  /** The check in flight: aborted by forget() and stop(). */
  inFlight?: AbortController;
}

interface Instance {
  /** pid|startedAt|probes hash. */
  id: string;
  pid: number;
  network: string;
  startedAtMs: number;
  workers: Map<ProbeKind, Worker>;
  started: boolean;
  ready: boolean;
  failure?: ProbeFailure;
}

export class Prober {
  readonly limiter: FairLimiter;
  private readonly instances = new Map<string, Instance>();
  private stopped = false;
  /** Checks in flight (waiting for a slot or running), aborted or not, until they settle. */
  private readonly running = new Set<Promise<void>>();
  /** Checks completed (for tests and the benchmark). */
  checks = 0;

  constructor(private readonly opts: ProberOptions) {
    this.limiter = new FairLimiter({ slots: Math.max(1, opts.concurrency ?? 8), releaseAfterMs: opts.releaseSlotAfterMs ?? 1000, clock: opts.clock });
  }

  /** Follow the container as it is now: start, keep or end its probe workers. */
  sync(key: string, actual: ActualContainer | undefined): void {
    if (this.stopped) return;
    const probes = actual?.applied.spec.probes;
    const running = actual?.process.state === 'running' && actual.process.pid !== undefined;
    if (!running || !probes || Object.keys(probes).length === 0) {
      this.forget(key);
      return;
    }
    const pid = actual.process.pid!;
    const id = `${pid}|${actual.process.startedAt ?? ''}|${canonicalJson(probes)}`;
    if (this.instances.get(key)?.id === id) return;
    this.forget(key);
    const startedAtMs = Date.parse(actual.process.startedAt ?? '') || this.opts.clock.now();
    const inst: Instance = {
      id,
      pid,
      network: actual.applied.spec.network,
      startedAtMs,
      workers: new Map(),
      started: !probes.startup,
      ready: !probes.readiness,
    };
    for (const kind of ['startup', 'readiness', 'liveness'] as const) {
      const probe = probes[kind];
      if (probe) inst.workers.set(kind, { kind, probe, successes: 0, failures: 0 });
    }
    this.instances.set(key, inst);
    for (const w of inst.workers.values()) if (w.kind === 'startup' || inst.started) this.schedule(key, inst, w, true);
  }

  /** The Ready verdict for the running process, undefined when it has no startup or readiness probe. */
  verdict(key: string, pid: number | undefined): ProbeVerdict | undefined {
    const inst = this.instances.get(key);
    if (!inst || inst.pid !== pid) return undefined;
    const startup = inst.workers.get('startup');
    const readiness = inst.workers.get('readiness');
    if (!startup && !readiness) return undefined;
    if (!inst.started) return { ready: false, reason: 'StartupProbe', message: lastWords('startup probe has not succeeded yet', startup?.last) };
    if (!inst.ready) return { ready: false, reason: 'ReadinessProbe', message: lastWords('readiness probe has not succeeded yet', readiness?.last) };
    return { ready: true, reason: 'ProbesPassed', message: `running with pid ${pid}; ${readiness ? 'readiness' : 'startup'} probe succeeded` };
  }

  /**
   * The failed liveness (or startup) probe of this process, if any. It stays until the process is
   * gone (its kill may fail and be planned again); it is never about another pid.
   */
  failure(key: string, pid: number | undefined): ProbeFailure | undefined {
    const f = this.instances.get(key)?.failure;
    return f && f.pid === pid ? f : undefined;
  }

  /** Ends the key's workers: no more checks, and the ones in flight are aborted (killed). */
  forget(key: string): void {
    const inst = this.instances.get(key);
    if (!inst) return;
    for (const w of inst.workers.values()) {
      if (w.timer) this.opts.clock.clearTimeout(w.timer);
      w.inFlight?.abort(new Error('probe worker stopped'));
    }
    this.instances.delete(key);
  }

  /** Ends every worker; resolves once the checks in flight, aborted, have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const key of [...this.instances.keys()]) this.forget(key);
    await Promise.all(this.running);
  }

  /** Containers with probes followed now. */
  get size(): number {
    return this.instances.size;
  }

  private schedule(key: string, inst: Instance, w: Worker, first: boolean): void {
    const now = this.opts.clock.now();
    const delay = first ? Math.max(0, inst.startedAtMs + w.probe.initialDelaySeconds * 1000 - now) : w.probe.periodSeconds * 1000;
    w.timer = this.opts.clock.setTimeout(() => {
      w.timer = undefined;
      this.tick(key, inst, w);
    }, delay);
  }

  private tick(key: string, inst: Instance, w: Worker): void {
    if (this.instances.get(key) !== inst || w.inFlight) return;
    const abort = new AbortController();
    w.inFlight = abort;
    const done: Promise<void> = this.runOne(key, inst, w, abort.signal).finally(() => {
      if (w.inFlight === abort) w.inFlight = undefined;
      this.running.delete(done);
    });
    this.running.add(done);
  }

  private async runOne(key: string, inst: Instance, w: Worker, signal: AbortSignal): Promise<void> {
    let outcome: ProbeOutcome;
    try {
      const check = this.opts.check ?? runCheck;
      const target = { key, pid: inst.pid, network: inst.network };
      outcome = await this.limiter.run(key, () => check(w.probe, target, { runtime: this.opts.runtime, tools: this.opts.tools, signal }), signal);
    } catch (err) {
      outcome = { ok: false, output: err instanceof Error ? err.message : String(err) };
    }
    w.inFlight = undefined;
    if (signal.aborted || this.instances.get(key) !== inst) return; // forgotten (restarted, removed, stopping) meanwhile
    this.checks++;
    // The first failure of a probe is shown too (the Ready message says why), later ones only when it flips.
    const firstFailure = w.last === undefined && !outcome.ok;
    w.last = outcome;
    if (outcome.ok) {
      w.successes++;
      w.failures = 0;
    } else {
      w.failures++;
      w.successes = 0;
    }
    if (this.apply(key, inst, w) || firstFailure) this.opts.onChange(key);
    if (this.instances.get(key) === inst && !inst.failure && inst.workers.get(w.kind) === w) this.schedule(key, inst, w, false);
  }

  /** Counts the result into the instance's state; true when the loop must look. */
  private apply(key: string, inst: Instance, w: Worker): boolean {
    const p = w.probe;
    switch (w.kind) {
      case 'startup':
        if (w.successes >= p.successThreshold) {
          inst.started = true;
          inst.workers.delete('startup'); // a startup probe runs until it passes once
          for (const other of inst.workers.values()) this.schedule(key, inst, other, true);
          return true;
        }
        if (w.failures >= p.failureThreshold) return this.fail(inst, w, 'startup');
        return false;
      case 'readiness': {
        const was = inst.ready;
        if (w.successes >= p.successThreshold) inst.ready = true;
        else if (w.failures >= p.failureThreshold) inst.ready = false;
        return was !== inst.ready;
      }
      case 'liveness':
        return w.failures >= p.failureThreshold ? this.fail(inst, w, 'liveness') : false;
    }
  }

  private fail(inst: Instance, w: Worker, kind: ProbeFailure['kind']): boolean {
    const what = kind === 'startup' ? 'Startup' : 'Liveness';
    inst.failure = {
      kind,
      pid: inst.pid,
      message: `${what} probe failed ${w.failures} times: ${w.last?.output ?? ''}`.trim(),
      probeHash: probeHash(w.probe), // the plan honours it only while this probe is the declared one
    };
    for (const other of inst.workers.values()) if (other.timer) this.opts.clock.clearTimeout(other.timer);
    return true;
  }
}

function lastWords(base: string, last: ProbeOutcome | undefined): string {
  return last && !last.ok ? `${base}: ${last.output}` : base;
}
