/**
 * The Controller with an in-memory runtime and source, the real plan() and executeAction(), and
 * a fake clock: no containers, no sleeps.
 */
import assert from 'node:assert/strict';
import { Controller } from '../../src/controller/loop.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { findCondition } from '../../src/controller/status.js';
import type { ContainerEvent, DetailedStatusSink, EventRecorder, StatusSink } from '../../src/contracts/sinks.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';
import { StatusStore } from '../../src/controller/status-store.js';
import { withTmpDir } from '../support/tmpdir.js';
import { plan } from '../../src/plan/plan.js';
import { executeAction } from '../../src/apply/execute.js';
import { ConflictError, GoneError, InvalidError, TransientError } from '../../src/contracts/errors.js';
import { hashOf } from '../../src/api/hash.js';
import type { ContainerStatus, DesiredContainer, Resources } from '../../src/api/types.js';
import type { ActualContainer, AppliedRecord, CreateRequest, ProcessInfo, ResizeResult, Runtime, ExecResult, StopOptions } from '../../src/runtime/runtime.js';
import type { DesiredSnapshot, DesiredSource } from '../../src/contracts/source.js';
import { Metrics } from '../../src/observability/metrics.js';
import { desired } from '../support/model.js';

interface Box {
  applied: AppliedRecord;
  process: ProcessInfo;
  limits: Resources;
  restartCount: number;
  everStarted: boolean;
}

class MemRuntime implements Runtime {
  readonly name = 'mem';
  boxes = new Map<string, Box>();
  calls: string[] = [];
  nextPid = 100;
  /** Errors thrown by the next call of a method. */
  fail = new Map<string, Error>();
  /** Blocks a method until released. */
  gate?: { method: string; wait: Promise<void> };

  constructor(private readonly clock: FakeClock) {}

  private async enter(method: string, key: string): Promise<void> {
    this.calls.push(`${method} ${key}`);
    const err = this.fail.get(method);
    if (err) {
      this.fail.delete(method);
      throw err;
    }
    if (this.gate?.method === method) await this.gate.wait;
  }

  private view(key: string, b: Box): ActualContainer {
    const [namespace, name] = key.split('/') as [string, string];
    return structuredClone({
      key,
      namespace,
      name,
      id: `${namespace}_${name}`,
      applied: b.applied,
      process: b.process,
      limits: b.limits,
      restartCount: b.restartCount,
    });
  }

  async preflight(): Promise<void> {}
  async list(): Promise<ActualContainer[]> {
    return [...this.boxes].map(([k, b]) => this.view(k, b));
  }
  async get(key: string): Promise<ActualContainer | undefined> {
    const b = this.boxes.get(key);
    return b ? this.view(key, b) : undefined;
  }
  /** The in-memory node accepts every spec. */
  async check(_req: CreateRequest): Promise<void> {}

  async create(req: CreateRequest): Promise<void> {
    const key = `${req.namespace}/${req.name}`;
    await this.enter('create', key);
    if (this.boxes.has(key)) return;
    this.boxes.set(key, {
      applied: {
        namespace: req.namespace,
        name: req.name,
        spec: req.spec,
        specHash: hashOf(req.spec),
        source: req.source,
        createdAt: new Date(this.clock.now()).toISOString(),
      },
      process: { state: 'absent' },
      limits: {},
      restartCount: 0,
      everStarted: false,
    });
  }
  async start(key: string): Promise<{ pid: number }> {
    await this.enter('start', key);
    const b = this.boxes.get(key)!;
    if (b.process.state === 'running') return { pid: b.process.pid! };
    if (b.everStarted) b.restartCount++;
    b.everStarted = true;
    b.process = { state: 'running', pid: this.nextPid++, startedAt: new Date(this.clock.now()).toISOString() };
    b.limits = { ...b.applied.spec.resources };
    return { pid: b.process.pid! };
  }
  async stop(key: string, opts: StopOptions): Promise<{ exitCode?: number }> {
    await this.enter(opts.leaveExited ? 'stop(leaveExited)' : 'stop', key);
    const b = this.boxes.get(key);
    if (b && opts.leaveExited) {
      b.process = { state: 'exited', exitCode: 143, startedAt: b.process.startedAt, finishedAt: new Date(this.clock.now()).toISOString() };
      b.limits = {};
      return { exitCode: 143 };
    }
    if (b) {
      b.process = { state: 'absent' };
      b.limits = {};
    }
    return { exitCode: 0 };
  }
  async updateResources(key: string, resources: Resources): Promise<ResizeResult> {
    await this.enter('updateResources', key);
    const b = this.boxes.get(key)!;
    b.limits = { ...resources };
    return { limits: { ...resources }, deferred: [] };
  }
  async updateNetwork(): Promise<undefined> {
    return undefined;
  }
  async recordApplied(key: string, record: AppliedRecord): Promise<void> {
    await this.enter('recordApplied', key);
    this.boxes.get(key)!.applied = structuredClone(record);
  }
  async remove(key: string): Promise<void> {
    await this.enter('remove', key);
    this.boxes.delete(key);
  }
  async logs(): Promise<string> {
    return '';
  }
  async logBytes(): Promise<Buffer> {
    return Buffer.alloc(0);
  }
  async followLogs(): Promise<void> {}
  /** What exec (probes) answers. */
  execResult: ExecResult = { exitCode: 0, output: '' };
  async exec(): Promise<ExecResult> {
    return this.execResult;
  }
  /** The process dies by itself. */
  exit(key: string, exitCode: number): void {
    const b = this.boxes.get(key)!;
    b.process = { state: 'exited', exitCode, startedAt: b.process.startedAt, finishedAt: new Date(this.clock.now()).toISOString() };
    b.limits = {};
  }
}

class MemSource implements DesiredSource {
  readonly name = 'mem';
  private snap: DesiredSnapshot = { containers: new Map(), protectedKeys: new Set(), problems: [], complete: true };
  private cb?: (keys: string[] | 'all') => void;
  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.cb = onChange;
  }
  async stop(): Promise<void> {}
  snapshot(): DesiredSnapshot {
    return this.snap;
  }
  synced(): boolean {
    return true;
  }
  set(containers: DesiredContainer[], extra: Partial<DesiredSnapshot> = {}, changed?: string[]): void {
    const before = new Set(this.snap.containers.keys());
    const wasComplete = this.snap.complete;
    this.snap = { containers: new Map(containers.map((c) => [c.key, c])), protectedKeys: new Set(), problems: [], complete: true, ...extra };
    // Like FileSource: a change of completeness concerns every key.
    if (wasComplete !== this.snap.complete) this.cb?.('all');
    else this.cb?.(changed ?? [...new Set([...before, ...this.snap.containers.keys(), ...this.snap.protectedKeys])]);
  }
}

class Sink implements StatusSink, EventRecorder {
  statuses = new Map<string, ContainerStatus>();
  events: { key: string; ev: ContainerEvent }[] = [];
  async publish(key: string, status: ContainerStatus): Promise<void> {
    this.statuses.set(key, status);
  }
  record(key: string, ev: ContainerEvent): void {
    this.events.push({ key, ev });
  }
}

/** A Kubernetes-like detailed sink whose next writes fail as told. */
class FlakySink implements DetailedStatusSink {
  records = new Map<string, StatusRecord>();
  removed: string[] = [];
  failPublish: Error[] = [];
  failRemove: Error[] = [];
  async publish(): Promise<void> {}
  async publishDetailed(r: StatusRecord): Promise<void> {
    const err = this.failPublish.shift();
    if (err) throw err;
    this.records.set(r.key, r);
  }
  async remove(key: string): Promise<void> {
    const err = this.failRemove.shift();
    if (err) throw err;
    this.removed.push(key);
    this.records.delete(key);
  }
}

async function settle(c: Controller): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await c.queue.whenIdle();
    for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
  }
}

describe('Controller (in-memory runtime, fake clock)', () => {
  let clock: FakeClock;
  let rt: MemRuntime;
  let src: MemSource;
  let sink: Sink;
  let c: Controller;
  let metrics: Metrics;

  const web = desired('web', { resources: { memory: '64Mi', cpu: '500m' } });

  beforeEach(() => {
    clock = new FakeClock();
    rt = new MemRuntime(clock);
    src = new MemSource();
    sink = new Sink();
    metrics = new Metrics({ defaultMetrics: false });
    c = new Controller({
      runtime: rt,
      sources: [src],
      plan,
      execute: executeAction,
      clock,
      concurrency: 2,
      resyncMs: 30_000,
      statusSinks: [sink],
      recorders: [sink],
      metrics,
      nodeName: 'node1',
    });
  });
  afterEach(async () => {
    await c.stop();
  });

  async function startWith(containers: DesiredContainer[]): Promise<void> {
    src.set(containers);
    await c.start();
    await settle(c);
  }

  it('creates what is desired, becomes ready, then does nothing when converged', async () => {
    assert.equal(c.ready(), false);
    await startWith([web]);
    assert.ok(c.ready());
    assert.ok(c.healthy());
    assert.equal(rt.boxes.get('default/web')?.process.state, 'running');
    const st = sink.statuses.get('default/web')!;
    assert.equal(st.phase, 'Running');
    assert.equal(findCondition(st, 'Synced')?.status, 'True');
    assert.ok(sink.events.some((e) => e.ev.reason === 'Created'));
    rt.calls = [];
    await c.resync();
    await settle(c);
    assert.deepEqual(rt.calls, [], 'converged: no runtime calls');
    const text = await metrics.text();
    assert.match(text, /acetate_actions_total\{kind="create",outcome="created"\} 1/);
    assert.match(text, /acetate_containers\{phase="Running"\} 1/);
    assert.match(text, /acetate_ready 1/);
  });

  it('a change of a key reconciles only that key; a resize keeps the pid', async () => {
    const other = desired('other');
    await startWith([web, other]);
    const pid = rt.boxes.get('default/web')!.process.pid;
    rt.calls = [];
    const bigger = desired('web', { resources: { memory: '128Mi', cpu: '500m' } });
    src.set([bigger, other], {}, ['default/web']);
    await settle(c);
    assert.deepEqual(rt.calls, ['updateResources default/web', 'recordApplied default/web']);
    assert.equal(rt.boxes.get('default/web')!.process.pid, pid);
    assert.equal(rt.boxes.get('default/web')!.limits.memoryBytes, 128 * 2 ** 20);
  });

  it('the periodic resync repairs drift (limits changed by hand, container deleted)', async () => {
    await startWith([web]);
    rt.boxes.get('default/web')!.limits.memoryBytes = 32 * 2 ** 20; // runc update by hand
    clock.advance(30_000);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.limits.memoryBytes, 64 * 2 ** 20);
    rt.boxes.delete('default/web'); // deleted behind our back
    clock.advance(30_000);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')?.process.state, 'running');
  });

  it('restarts an exited process with crash-loop back-off (Always)', async () => {
    await startWith([web]);
    rt.exit('default/web', 1);
    await c.resync();
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.process.state, 'exited', 'not before 10s');
    let st = sink.statuses.get('default/web')!;
    assert.equal(findCondition(st, 'Ready')?.reason, 'CrashLoopBackOff');
    assert.equal(st.lastExitCode, 1);
    clock.advance(9_999);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.process.state, 'exited');
    clock.advance(1);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.process.state, 'running');
    assert.equal(rt.boxes.get('default/web')!.restartCount, 1);
    st = sink.statuses.get('default/web')!;
    assert.equal(st.restartCount, 1);
    assert.equal(st.phase, 'Running');
    // Second crash: 20s.
    rt.exit('default/web', 1);
    await c.resync();
    await settle(c);
    clock.advance(19_999);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.process.state, 'exited');
    clock.advance(1);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')!.process.state, 'running');
    assert.ok(sink.events.some((e) => e.ev.reason === 'BackOff'));
    assert.ok(sink.events.some((e) => e.ev.reason === 'Restarted'));
  });

  it('the process poll notices an exit before the resync and enqueues only that key', async () => {
    await startWith([web, desired('other')]);
    assert.deepEqual(await c.pollProcesses(), [], 'the first poll only learns');
    rt.exit('default/web', 1);
    rt.calls = [];
    assert.deepEqual(await c.pollProcesses(), ['default/web']);
    await settle(c);
    assert.equal(findCondition(sink.statuses.get('default/web'), 'Ready')?.reason, 'CrashLoopBackOff');
    assert.deepEqual(await c.pollProcesses(), [], 'nothing changed since');
  });

  it('restartPolicy Never and OnFailure(exit 0) leave the container exited', async () => {
    const never = desired('never', { restartPolicy: 'Never' });
    const onf = desired('onf', { restartPolicy: 'OnFailure' });
    await startWith([never, onf]);
    rt.exit('default/never', 2);
    rt.exit('default/onf', 0);
    await c.resync();
    await settle(c);
    clock.advance(10 * 60_000);
    await settle(c);
    assert.equal(rt.boxes.get('default/never')!.process.state, 'exited');
    assert.equal(rt.boxes.get('default/onf')!.process.state, 'exited');
    assert.equal(sink.statuses.get('default/never')!.phase, 'Failed');
    assert.equal(sink.statuses.get('default/onf')!.phase, 'Stopped');
    assert.equal(findCondition(sink.statuses.get('default/never'), 'Ready')?.reason, 'RestartPolicy');
  });

  it('a protected key (invalid manifest) is left exactly as it is', async () => {
    await startWith([web]);
    rt.calls = [];
    src.set([], {
      protectedKeys: new Set(['default/web']),
      problems: [{ origin: '/m/a.yaml', line: 3, message: 'YAML syntax error', keys: ['default/web'], kind: 'invalid' }],
    });
    await settle(c);
    clock.advance(30_000);
    await settle(c);
    assert.deepEqual(rt.calls, []);
    const st = sink.statuses.get('default/web')!;
    assert.equal(st.phase, 'Running');
    assert.equal(findCondition(st, 'Synced')?.reason, 'InvalidManifest');
    assert.match(await metrics.text(), /acetate_invalid_manifests 1/);
  });

  it('destroys a container no longer declared only when the snapshot is complete', async () => {
    await startWith([web]);
    src.set([], { complete: false });
    await settle(c);
    assert.ok(rt.boxes.has('default/web'), 'incomplete: not destroyed');
    src.set([], { complete: true });
    await settle(c);
    assert.ok(!rt.boxes.has('default/web'), 'complete: destroyed');
    assert.ok(sink.events.some((e) => e.ev.reason === 'Destroyed'));
  });

  it('retries a failing action with backoff, and reports the error in status', async () => {
    rt.fail.set('create', new Error('disk full'));
    await startWith([web]);
    assert.ok(!rt.boxes.has('default/web'));
    const st = sink.statuses.get('default/web')!;
    assert.equal(findCondition(st, 'Synced')?.reason, 'ReconcileError');
    assert.match(findCondition(st, 'Synced')!.message!, /create: disk full/);
    assert.equal(c.queue.failures('default/web'), 1);
    clock.advance(999);
    await settle(c);
    assert.ok(!rt.boxes.has('default/web'));
    clock.advance(1);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')?.process.state, 'running');
    assert.equal(findCondition(sink.statuses.get('default/web'), 'Synced')?.status, 'True');
    assert.match(await metrics.text(), /acetate_reconcile_errors_total\{retry="backoff"\} 1/);
  });

  it('a terminal error waits for the next change of the key (resyncs do not retry it)', async () => {
    rt.fail.set('create', new InvalidError('template nope not found'));
    await startWith([web]);
    assert.ok(c.queue.isParked('default/web'));
    rt.calls = [];
    clock.advance(5 * 60_000);
    await settle(c);
    assert.deepEqual(rt.calls, []);
    assert.equal(sink.statuses.get('default/web')!.phase, 'Failed');
    src.set([desired('web', { resources: { memory: '64Mi', cpu: '1' } })], {}, ['default/web']);
    await settle(c);
    assert.equal(rt.boxes.get('default/web')?.process.state, 'running');
  });

  it('stop() lets an in-flight action finish and takes no new work', async () => {
    await startWith([]);
    let release!: () => void;
    rt.gate = { method: 'create', wait: new Promise<void>((r) => (release = r)) };
    src.set([web, desired('b')], {}, ['default/web']);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(c.queue.processingCount(), 1);
    let stopped = false;
    const p = c.stop().then(() => (stopped = true));
    src.set([web, desired('b')], {}, ['default/b']);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(stopped, false, 'waits for the in-flight create');
    release();
    await p;
    assert.equal(rt.boxes.get('default/web')?.process.state, 'running', 'finished');
    assert.ok(!rt.boxes.has('default/b'), 'no new work after stop');
    assert.equal(c.healthy(), false);
  });

  it('adopts running containers without touching them (restart of acetate)', async () => {
    await startWith([web]);
    await c.stop();
    const pid = rt.boxes.get('default/web')!.process.pid;
    rt.calls = [];
    const c2 = new Controller({ runtime: rt, sources: [src], plan, execute: executeAction, clock });
    await c2.start();
    await settle(c2);
    assert.deepEqual(rt.calls, []);
    assert.equal(rt.boxes.get('default/web')!.process.pid, pid);
    assert.ok(c2.ready());
    await c2.stop();
  });

  it('probes: readiness drives Ready; a liveness failure is an Unhealthy event with the output, then a kill and a back-off restart', async () => {
    const probed = desired('web', {
      readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 5 },
      livenessProbe: { exec: { command: ['live'] }, periodSeconds: 5, failureThreshold: 2 },
    });
    rt.execResult = { exitCode: 1, output: 'disk full' };
    await startWith([probed]);
    const ready = () => sink.statuses.get('default/web')?.conditions?.find((x) => x.type === 'Ready');
    assert.equal(ready()?.status, 'False', 'not ready before the readiness probe passed');
    assert.equal(ready()?.reason, 'ReadinessProbe');
    const pid = rt.boxes.get('default/web')!.process.pid;
    clock.advance(0);
    await settle(c);
    assert.match(ready()?.message ?? '', /disk full/, 'the first failure says why');
    clock.advance(5000);
    await settle(c);
    const told = sink.events.filter((e) => ['Unhealthy', 'Killing', 'killed', 'Stopped'].includes(e.ev.reason)).map((e) => `${e.ev.reason}: ${e.ev.message}`);
    assert.deepEqual(told, [
      'Unhealthy: Liveness probe failed 2 times: disk full',
      'Killing: Container failed liveness probe, will be restarted per restartPolicy',
    ]);
    assert.ok(rt.calls.includes('stop(leaveExited) default/web'), 'killed as a crash, not stopped');
    assert.match(await metrics.text(), /acetate_actions_total\{kind="kill",outcome="killed"\} 1/, 'the kill is an action of the plan');
    assert.ok(
      sink.events.some((e) => e.ev.reason === 'BackOff'),
      'the restart waits for the crash-loop back-off',
    );
    rt.execResult = { exitCode: 0, output: '' };
    clock.advance(10_000);
    await settle(c);
    const b = rt.boxes.get('default/web')!;
    assert.equal(b.process.state, 'running');
    assert.notEqual(b.process.pid, pid);
    assert.equal(b.restartCount, 1);
    clock.advance(0);
    await settle(c);
    assert.equal(ready()?.status, 'True');
  });
  describe('a kill is told (Unhealthy, then Killing) only once it is made', () => {
    const sick = desired('web', { livenessProbe: { exec: { command: ['live'] }, periodSeconds: 5, failureThreshold: 1 } });
    const told = () => sink.events.filter((e) => ['Unhealthy', 'Killing', 'Failed'].includes(e.ev.reason)).map((e) => `${e.ev.reason}: ${e.ev.message}`);

    it('not when the process is already gone as the kill comes (outcome unchanged)', async () => {
      // The process ends by itself between the plan and the kill: execute finds no such pid.
      const execute: typeof executeAction = async (a, ctx) => {
        if (a.kind === 'kill') rt.exit(a.key, 1);
        return executeAction(a, ctx);
      };
      c = new Controller({ runtime: rt, sources: [src], plan, execute, clock, statusSinks: [sink], recorders: [sink], metrics, nodeName: 'node1' });
      rt.execResult = { exitCode: 1, output: 'no heartbeat' };
      await startWith([sick]);
      clock.advance(0);
      await settle(c);
      assert.match(await metrics.text(), /acetate_actions_total\{kind="kill",outcome="unchanged"\} 1/, 'the kill was planned and found nothing to kill');
      assert.deepEqual(told(), []);
      assert.ok(!rt.calls.includes('stop(leaveExited) default/web'));
    });

    it('not for an attempt that failed; once, when its retry makes it', async () => {
      rt.execResult = { exitCode: 1, output: 'no heartbeat' };
      rt.fail.set('stop(leaveExited)', new TransientError('runc: container is busy'));
      await startWith([sick]);
      clock.advance(0);
      await settle(c);
      assert.deepEqual(told(), ['Failed: kill failed: runc: container is busy'], 'the process still runs: no kill to tell of');
      clock.advance(1000); // the queue's back-off
      await settle(c);
      assert.deepEqual(told(), [
        'Failed: kill failed: runc: container is busy',
        'Unhealthy: Liveness probe failed 1 times: no heartbeat',
        'Killing: Container failed liveness probe, will be restarted per restartPolicy',
      ]);
      assert.equal(rt.boxes.get('default/web')?.process.state, 'exited', 'killed, left exited');
    });
  });

  it("a status sink that fails is the reconcile's Requeue, by the failure's kind (not a logged warning)", async () => {
    const flaky = new FlakySink();
    c = new Controller({ runtime: rt, sources: [src], plan, execute: executeAction, clock, statusSinks: [flaky], nodeName: 'node1' });
    await startWith([web]);
    assert.equal(flaky.records.get('default/web')?.status.phase, 'Running');
    flaky.failPublish.push(new ConflictError('the object was modified'));
    assert.deepEqual((await c.reconcile('default/web')).requeue.kind, 'now', 'a conflict: again at once');
    flaky.failPublish.push(new TransientError('apiserver 503'));
    const r = await c.reconcile('default/web');
    assert.equal(r.requeue.kind, 'backoff', 'a transient failure: back off');
    flaky.failPublish.push(new GoneError('the object is gone'));
    assert.equal((await c.reconcile('default/web')).requeue.kind, 'done', 'gone: nothing left to do');
    // Through the queue: a transient failure is retried after the backoff and then written.
    flaky.failPublish.push(new TransientError('apiserver 503'));
    rt.boxes.get('default/web')!.limits.memoryBytes = 1; // something to publish
    await c.resync();
    await settle(c);
    assert.equal(c.queue.failures('default/web'), 1);
    clock.advance(1000);
    await settle(c);
    assert.equal(c.queue.failures('default/web'), 0);
    assert.equal(flaky.failPublish.length, 0);
  });

  it('removing the status of a destroyed container (a finalizer) is a reconcile step: retried until it is done', async () => {
    const flaky = new FlakySink();
    c = new Controller({ runtime: rt, sources: [src], plan, execute: executeAction, clock, statusSinks: [flaky], nodeName: 'node1' });
    await startWith([web]);
    flaky.failRemove.push(new TransientError('apiserver 503'));
    src.set([]);
    await settle(c);
    assert.ok(!rt.boxes.has('default/web'), 'destroyed');
    assert.deepEqual(flaky.removed, [], 'the removal failed');
    assert.equal(c.queue.failures('default/web'), 1, 'and backs off');
    clock.advance(1000);
    await settle(c);
    assert.deepEqual(flaky.removed, ['default/web'], 'removed at the retry');
  });

  it('a restarted loop goes on counting the crash-loop streak it published', async () => {
    await withTmpDir(async (dir) => {
      const store = new StatusStore(dir);
      c = new Controller({ runtime: rt, sources: [src], plan, execute: executeAction, clock, statusStore: store, nodeName: 'node1' });
      await startWith([web]);
      rt.exit('default/web', 1);
      await c.resync();
      await settle(c);
      clock.advance(10_000);
      await settle(c);
      assert.equal(rt.boxes.get('default/web')!.process.state, 'running', 'first restart after 10s');
      rt.exit('default/web', 1);
      await c.stop();
      const c2 = new Controller({ runtime: rt, sources: [src], plan, execute: executeAction, clock, statusStore: new StatusStore(dir), nodeName: 'node1' });
      try {
        await c2.start();
        await settle(c2);
        const r = await c2.reconcile('default/web');
        assert.deepEqual(r.results, []);
        assert.equal(r.waiting?.reason, 'CrashLoopBackOff');
        assert.match(r.waiting!.message, /back-off 20s/, 'the second crash in a row, not a first one');
        assert.deepEqual(r.requeue, { kind: 'after', ms: 20_000 });
      } finally {
        await c2.stop();
      }
    });
  });
});
