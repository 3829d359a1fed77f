/**
 * The kill after a failed liveness (or startup) probe is an action of the plan, decided from the
 * prober's verdict taken as data: only for the process the verdict is about, only while the
 * desired state is Running and declares the probe that failed; its reason is the probe's words.
 * `acetate plan` gets the same verdict from the status record the loop published (unhealthyFacts)
 * while that loop runs, and prints the same line.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readProcStat, selfIdentity } from '../../src/util/processes.js';
import { plan, type PlanInput } from '../../src/plan/plan.js';
import { probeHash, type ProbeFailure } from '../../src/plan/probe-kill.js';
import { planToJson, renderPlan, summarizePlan } from '../../src/plan/render.js';
import { unhealthyFacts, unhealthyRecord } from '../../src/controller/probes/unhealthy.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import type { DesiredContainer } from '../../src/api/types.js';
import { actualFrom, desired } from '../support/model.js';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const STARTED = '2025-06-01T11:59:00.000Z';
const LIVENESS = { httpGet: { path: '/healthz', port: 8080 }, failureThreshold: 3 };
const web = desired('web', { restartPolicy: 'Always', livenessProbe: LIVENESS });
const running = actualFrom(web, { state: 'running', pid: 4242, startedAt: STARTED });
const failed: ProbeFailure = {
  kind: 'liveness',
  pid: 4242,
  message: 'Liveness probe failed 3 times: HTTP 500 Internal Server Error',
  probeHash: probeHash(web.spec.probes?.liveness),
};

/** A real process standing for `acetate run` (the loop that signs its verdicts), and its identity. */
async function startLoopStandIn(): Promise<{ child: ChildProcess; id: { pid: number; startTicks: number }; end: () => Promise<void> }> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  await once(child, 'spawn');
  const st = await readProcStat(child.pid!);
  assert.ok(st, 'its /proc/PID/stat');
  const exited = once(child, 'exit');
  return {
    child,
    id: { pid: child.pid!, startTicks: st.startTime },
    end: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function planOf(d: DesiredContainer, a: ActualContainer, failure: ProbeFailure | undefined, extra: Partial<PlanInput> = {}) {
  return plan({
    desired: new Map([[d.key, d]]),
    actual: new Map([[a.key, a]]),
    complete: true,
    now: NOW,
    unhealthy: new Map(failure ? [[d.key, failure]] : []),
    ...extra,
  });
}

describe('plan: the kill after a failed liveness/startup probe (pure)', () => {
  let standIn: Awaited<ReturnType<typeof startLoopStandIn>>;
  let loop: { pid: number; startTicks: number };
  before(async () => {
    standIn = await startLoopStandIn();
    loop = standIn.id;
  });
  after(() => standIn.end());

  it("kills the verdict's pid, with the probe's words as the reason, and plans again at once", () => {
    const p = planOf(web, running, failed);
    assert.deepEqual(
      p.actions.map((a) => [a.kind, a.reason]),
      [['kill', 'Liveness probe failed 3 times: HTTP 500 Internal Server Error (pid 4242); restartPolicy Always decides the restart']],
    );
    const [kill] = p.actions;
    assert.ok(kill?.kind === 'kill');
    assert.deepEqual([kill.probe, kill.pid, kill.message], ['liveness', 4242, failed.message]);
    assert.deepEqual(p.unchanged, []);
    assert.deepEqual(p.requeue, [{ key: web.key, at: NOW }], 'left exited: restartPolicy decides in the next plan');
  });

  it('no kill when the verdict is about another pid (the process changed), or without a verdict', () => {
    const restarted = actualFrom(web, { state: 'running', pid: 5000, startedAt: STARTED });
    const p = planOf(web, restarted, failed);
    assert.deepEqual(p.actions, []);
    assert.deepEqual(p.unchanged, [web.key]);
    assert.deepEqual(p.requeue, []);
    assert.deepEqual(planOf(web, running, undefined).actions, []);
  });

  it('no kill when the desired state is Stopped (a graceful stop instead), nor once the process exited', () => {
    const stopped = desired('web', { state: 'Stopped', livenessProbe: LIVENESS });
    assert.deepEqual(
      planOf(stopped, running, failed).actions.map((a) => a.kind),
      ['stop'],
    );
    const exited = { ...actualFrom(web, { state: 'exited', exitCode: 143, pid: 4242, startedAt: STARTED, finishedAt: STARTED }), restartCount: 1 };
    assert.deepEqual(
      planOf(web, exited, failed).actions.map((a) => [a.kind, a.reason]),
      [['start', 'process exited with code 143; restartPolicy Always']],
      'restartPolicy decides, as after a crash',
    );
  });

  it('a startup probe too; the kill is the only action (a resize of a condemned process is moot)', () => {
    const bigger = desired('web', {
      restartPolicy: 'OnFailure',
      resources: { memory: '512Mi' },
      startupProbe: { tcpSocket: { port: 8080 }, failureThreshold: 30 },
    });
    const startup: ProbeFailure = {
      kind: 'startup',
      pid: 4242,
      message: 'Startup probe failed 30 times: dial tcp 127.0.0.1:8080: connection refused',
      probeHash: probeHash(bigger.spec.probes?.startup),
    };
    const p = planOf(bigger, running, startup);
    assert.deepEqual(
      p.actions.map((a) => [a.kind, a.reason]),
      [['kill', 'Startup probe failed 30 times: dial tcp 127.0.0.1:8080: connection refused (pid 4242); restartPolicy OnFailure decides the restart']],
    );
  });

  it('no kill once the probe that failed is not the declared one: edited (the record is brought up to date instead) or removed', () => {
    const edited = desired('web', { restartPolicy: 'Always', livenessProbe: { ...LIVENESS, failureThreshold: 10 } });
    const p = planOf(edited, actualFrom(edited, running.process, web.spec), failed);
    assert.deepEqual(
      p.actions.map((a) => [a.kind, a.reason]),
      [['configure', 'probes changed (no restart needed)']],
    );
    const removed = desired('web', { restartPolicy: 'Always' });
    assert.deepEqual(
      planOf(removed, actualFrom(removed, running.process, web.spec), failed).actions.map((a) => a.kind),
      ['configure'],
    );
    const readinessEdited = desired('web', { restartPolicy: 'Always', livenessProbe: LIVENESS, readinessProbe: { tcpSocket: { port: 8080 } } });
    assert.deepEqual(
      planOf(readinessEdited, actualFrom(readinessEdited, running.process, web.spec), failed).actions.map((a) => a.kind),
      ['kill'],
      'another probe changed: the verdict stands',
    );
  });

  it('renders as a line of the plan, in the summary and in JSON', () => {
    const p = planOf(web, running, failed);
    assert.match(
      renderPlan(p),
      /^ {4}~ kill {6}default\/web {2}Liveness probe failed 3 times: HTTP 500 Internal Server Error \(pid 4242\); restartPolicy Always decides the restart$/m,
    );
    assert.equal(summarizePlan(p), 'Plan: 1 to kill; 0 unchanged.');
    const json = planToJson(p) as { actions: unknown[] };
    assert.deepEqual(json.actions, [{ kind: 'kill', key: web.key, reason: p.actions[0]!.reason, probe: 'liveness', pid: 4242 }]);
  });

  it('refuses verdicts without now (a caller bug)', () => {
    assert.throws(() => planOf(web, running, failed, { now: undefined }), /unhealthy needs now/);
  });

  it('`acetate plan` takes the verdict the loop published, only for the process that runs now', async () => {
    const published = { ...unhealthyRecord(failed, running)!, by: loop };
    assert.deepEqual(unhealthyRecord(failed, running), { ...failed, startedAt: STARTED });
    assert.equal(unhealthyRecord(failed, actualFrom(web, { state: 'running', pid: 7 })), undefined);
    const record = { key: web.key, incarnation: running.applied.createdAt, unhealthy: published };
    const facts = await unhealthyFacts([record], new Map([[web.key, running]]));
    assert.deepEqual(facts, new Map([[web.key, failed]]));
    assert.match(renderPlan(planOf(web, running, undefined, { unhealthy: facts })), /~ kill +default\/web {2}Liveness probe failed 3 times/);
    // The same pid, another process (restarted since, the pid reused), or another container of that name: not taken.
    const reused = actualFrom(web, { state: 'running', pid: 4242, startedAt: '2025-06-01T11:59:30.000Z' });
    assert.equal((await unhealthyFacts([record], new Map([[web.key, reused]]))).size, 0);
    const recreated = { ...running, applied: { ...running.applied, createdAt: '2025-06-01T11:00:00Z' } };
    assert.equal((await unhealthyFacts([record], new Map([[web.key, recreated]]))).size, 0);
    const exited = actualFrom(web, { state: 'exited', exitCode: 143, pid: 4242, startedAt: STARTED });
    assert.equal((await unhealthyFacts([record], new Map([[web.key, exited]]))).size, 0);
    assert.equal((await unhealthyFacts([{ key: web.key }], new Map([[web.key, running]]))).size, 0);
  });

  describe('a verdict is a fact only while the prober that made it lives (its signer, `by`)', () => {
    const factsBy = async (by: { pid: number; startTicks: number } | undefined) => {
      const unsigned = unhealthyRecord(failed, running)!;
      const record = { key: web.key, incarnation: running.applied.createdAt, unhealthy: by ? { ...unsigned, by } : unsigned };
      return plan({
        desired: new Map([[web.key, web]]),
        actual: new Map([[web.key, running]]),
        complete: true,
        now: NOW,
        unhealthy: await unhealthyFacts([record], new Map([[web.key, running]])),
      });
    };

    it('honoured while the loop that signed it runs (`acetate plan` beside `acetate run`)', async () => {
      assert.deepEqual(
        (await factsBy(loop)).actions.map((a) => a.kind),
        ['kill'],
      );
    });

    it('ignored once that loop is gone (`acetate apply`, `acetate plan` after `run` died), nothing planned', async () => {
      const gone = await startLoopStandIn();
      await gone.end();
      const p = await factsBy(gone.id);
      assert.deepEqual(p.actions, []);
      assert.deepEqual(p.unchanged, [web.key]);
    });

    it('ignored when the pid is another process now (other start time), when signed by this very process, or unsigned', async () => {
      assert.deepEqual((await factsBy({ ...loop, startTicks: loop.startTicks + 1 })).actions, []);
      const me = await selfIdentity();
      assert.ok(me);
      assert.deepEqual((await factsBy(me)).actions, [], 'a reader never probes: its own pid is not a live prober');
      assert.deepEqual((await factsBy(undefined)).actions, []);
    });
  });
});
