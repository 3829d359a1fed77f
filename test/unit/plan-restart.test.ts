/**
 * The plan decides the restart of an exited process from plain data: the restart policy (one
 * rule), now, and the crash-loop back-off facts of that exit. A gated start is a line of the plan
 * with its time, in text and JSON.
 */
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/contracts/clock.js';
import { plan, type PlanInput } from '../../src/plan/plan.js';
import { exitIdentity, restartWanted, type RestartBackoff } from '../../src/plan/restart.js';
import { planToJson, renderPlan, summarizePlan } from '../../src/plan/render.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

describe('plan: restarts of exited processes (pure, fake clock)', () => {
  const clock = new FakeClock(Date.UTC(2025, 5, 1, 12, 0, 0));
  const T0 = clock.now();
  const web = desired('web', { restartPolicy: 'Always' });
  const crashed: ActualContainer = {
    ...actualFrom(web, { state: 'exited', exitCode: 1, pid: 42, startedAt: new Date(T0 - 2000).toISOString(), finishedAt: new Date(T0).toISOString() }),
    restartCount: 3,
  };
  const facts: RestartBackoff = { exitId: exitIdentity(crashed.process, crashed.restartCount), streak: 4, restartAt: T0 + 80_000, delayMs: 80_000 };

  function at(now: number, extra: Partial<PlanInput> = {}) {
    return plan({
      desired: new Map([[web.key, web]]),
      actual: new Map([[web.key, crashed]]),
      complete: true,
      now,
      restartBackoff: new Map([[web.key, facts]]),
      ...extra,
    });
  }

  it('a start gated until T: held with its time and a requeue at T; released at T', () => {
    const before = at(clock.now());
    assert.deepEqual(before.actions, []);
    assert.deepEqual(before.unchanged, [], 'not converged: a start is due later');
    assert.deepEqual(before.held, [
      { key: web.key, reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container: exited with code 1', until: T0 + 80_000 },
    ]);
    assert.deepEqual(before.requeue, [{ key: web.key, at: T0 + 80_000 }]);
    clock.advance(79_999);
    assert.deepEqual(at(clock.now()).actions, [], 'a millisecond before T');
    clock.advance(1);
    const due = at(clock.now());
    assert.deepEqual(
      due.actions.map((a) => [a.kind, a.reason]),
      [['start', 'process exited with code 1; restartPolicy Always']],
    );
    assert.deepEqual(due.held, []);
    assert.deepEqual(due.requeue, []);
  });

  it('shows the gated start as a line of the plan, and in JSON with an ISO time', () => {
    const p = at(T0);
    const until = new Date(T0 + 80_000);
    const hhmmss = until.toTimeString().slice(0, 8);
    assert.match(
      renderPlan(p),
      new RegExp(
        `! held +default/web: start blocked by crash-loop back-off until ${hhmmss} \\(back-off 1m20s restarting failed container: exited with code 1\\)`,
      ),
    );
    assert.match(summarizePlan(p), /No changes\. 0 container\(s\) converged, 1 start\(s\) held by crash-loop back-off\./);
    const json = planToJson(p) as { held: unknown[]; requeue: unknown[] };
    assert.deepEqual(json.held, [
      {
        key: web.key,
        action: 'start',
        reason: 'CrashLoopBackOff',
        message: 'back-off 1m20s restarting failed container: exited with code 1',
        until: until.toISOString(),
      },
    ]);
    assert.deepEqual(json.requeue, [{ key: web.key, at: until.toISOString() }]);
  });

  it('facts about another exit are ignored (the process ran and exited again since)', () => {
    const again: ActualContainer = { ...crashed, restartCount: 4 };
    const p = plan({
      desired: new Map([[web.key, web]]),
      actual: new Map([[web.key, again]]),
      complete: true,
      now: T0,
      restartBackoff: new Map([[web.key, facts]]),
    });
    assert.equal(p.actions[0]?.kind, 'start');
  });

  it('without back-off facts (apply), a restart the policy wants is taken now', () => {
    const p = plan({ desired: new Map([[web.key, web]]), actual: new Map([[web.key, crashed]]), complete: true });
    assert.equal(p.actions[0]?.kind, 'start');
  });

  it('Never and OnFailure: one rule, whatever the back-off says', () => {
    assert.equal(restartWanted('Always', 0), true);
    assert.equal(restartWanted('Always', undefined), true);
    assert.equal(restartWanted('OnFailure', 0), false);
    assert.equal(restartWanted('OnFailure', 137), true);
    assert.equal(restartWanted('OnFailure', undefined), false);
    assert.equal(restartWanted('Never', 1), false);
    const elapsed = T0 + 10 * 60_000;
    for (const [policy, code, start] of [
      ['Never', 1, false],
      ['OnFailure', 0, false],
      ['OnFailure', 2, true],
    ] as const) {
      const d = desired('web', { restartPolicy: policy });
      const a: ActualContainer = { ...crashed, process: { ...crashed.process, exitCode: code } };
      const f: RestartBackoff = { ...facts, exitId: exitIdentity(a.process, a.restartCount) };
      const p = plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, a]]), complete: true, now: elapsed, restartBackoff: new Map([[d.key, f]]) });
      assert.equal(
        p.actions.some((x) => x.kind === 'start'),
        start,
        `${policy} after exit ${code}`,
      );
      if (!start) assert.equal(p.held[0]?.reason, 'RestartPolicy');
      // Before the back-off is over the same rule holds first: a start the policy refuses is never "due later".
      const early = plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, a]]), complete: true, now: T0, restartBackoff: new Map([[d.key, f]]) });
      assert.equal(early.held[0]?.reason, start ? 'CrashLoopBackOff' : 'RestartPolicy');
      assert.equal(early.requeue.length, start ? 1 : 0);
    }
  });

  it('refuses back-off facts without now (a caller bug, not a silent "no back-off")', () => {
    assert.throws(() => plan({ desired: new Map(), actual: new Map(), complete: true, restartBackoff: new Map() }), /restartBackoff needs now/);
  });
});
