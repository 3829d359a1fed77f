/**
 * Crash-loop bookkeeping (CrashLoopTracker) and the plan's gating of a restart on it, driven by a
 * fake clock: the tracker counts exits, plan() decides from its facts.
 */
import assert from 'node:assert/strict';
import { backoffFromRecord, CrashLoopTracker } from '../../src/controller/crashloop.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { plan } from '../../src/plan/plan.js';
import type { ActualContainer, ProcessInfo } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

describe('crash-loop back-off', () => {
  let clock: FakeClock;
  let t: CrashLoopTracker;
  beforeEach(() => {
    clock = new FakeClock();
    t = new CrashLoopTracker({}, clock);
  });

  const web = desired('web', { restartPolicy: 'Always' });
  const iso = (ms: number): string => new Date(ms).toISOString();
  let runs = 0;
  /** The container after a process that ran for ranMs exited now. */
  function exited(exitCode: number | undefined, opts: { ranMs?: number; restartCount?: number } = {}): ActualContainer {
    runs++;
    const p: ProcessInfo = { state: 'exited', startedAt: iso(clock.now() - (opts.ranMs ?? 1000)), finishedAt: iso(clock.now()), pid: 1000 + runs };
    if (exitCode !== undefined) p.exitCode = exitCode;
    return { ...actualFrom(web, p), restartCount: opts.restartCount ?? 0 };
  }
  /** What the loop does: count the exit, then plan with the facts. */
  function planAfter(a: ActualContainer) {
    const facts = t.observe(a);
    return plan({
      desired: new Map([[web.key, web]]),
      actual: new Map([[a.key, a]]),
      complete: true,
      now: clock.now(),
      restartBackoff: new Map([[a.key, facts]]),
    });
  }
  const starts = (p: ReturnType<typeof plan>): number => p.actions.filter((a) => a.kind === 'start').length;

  it('waits 10s, 20s, 40s … capped at 5 min between consecutive crashes', () => {
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const a = exited(1, { restartCount: i });
      const first = planAfter(a);
      assert.equal(starts(first), 0, 'held at the exit');
      const held = first.held[0]!;
      assert.equal(held.reason, 'CrashLoopBackOff');
      assert.match(held.message, /back-off (\d+m)?(\d+s)? restarting failed container: exited with code 1/);
      delays.push(held.until! - clock.now());
      assert.deepEqual(first.requeue, [{ key: web.key, at: held.until }], 'the plan asks to come back when it is due');
      clock.advance(held.until! - clock.now() - 1);
      assert.equal(starts(planAfter(a)), 0, 'same exit, not yet');
      clock.advance(1);
      const due = planAfter(a);
      assert.equal(starts(due), 1, 'released at T');
      assert.deepEqual(due.held, []);
      t.noteStarted(web.key);
      clock.advance(1000); // runs 1s, then crashes again
    }
    assert.deepEqual(delays, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    assert.equal(t.streak(web.key), 8);
  });

  it('the same exit seen many times counts once', () => {
    const a = exited(2);
    for (let i = 0; i < 5; i++) t.observe(a);
    assert.equal(t.streak(web.key), 1);
  });

  it('a run of 10 minutes resets the streak', () => {
    for (let i = 0; i < 4; i++) {
      const f = t.observe(exited(1, { restartCount: i }));
      clock.advance(f.restartAt - clock.now());
      t.noteStarted(web.key);
      clock.advance(1000);
    }
    assert.equal(t.streak(web.key), 4);
    clock.advance(10 * 60_000);
    const f = t.observe(exited(1, { ranMs: 10 * 60_000, restartCount: 4 }));
    assert.equal(t.streak(web.key), 1);
    assert.equal(f.restartAt - clock.now(), 10_000);
  });

  it('an exit long ago (e.g. while acetate was down) restarts now', () => {
    const a = { ...actualFrom(web, { state: 'exited', exitCode: 1, startedAt: iso(clock.now() - 120_000), finishedAt: iso(clock.now() - 60_000) }) };
    assert.equal(starts(planAfter(a)), 1);
  });

  it('without timestamps, uses the time the exit was first seen and the time of the last start', () => {
    t.noteStarted(web.key);
    clock.advance(5000);
    const f = t.observe(actualFrom(web, { state: 'exited', exitCode: 3 }));
    assert.equal(f.restartAt, clock.now() + 10_000);
  });

  it('honours injected base and cap, and forget()', () => {
    t = new CrashLoopTracker({ baseMs: 100, maxMs: 300 }, clock);
    assert.equal(t.observe(exited(1)).delayMs, 100);
    t.forget(web.key);
    assert.equal(t.streak(web.key), 0);
    assert.equal(t.restartAt(web.key), undefined);
  });

  it('a restarted loop takes up the published streak; another process reads the pending restart', () => {
    const a = exited(1);
    t.observe(a);
    clock.advance(10_000);
    t.noteStarted(web.key);
    clock.advance(1000);
    const b = exited(1, { restartCount: 1 });
    const facts = t.observe(b);
    const rec = t.toRecord(web.key)!;
    assert.equal(rec.streak, 2);
    assert.equal(rec.restartAt, iso(facts.restartAt));
    // `acetate plan`: the same facts, for the container that exists now only.
    assert.deepEqual(backoffFromRecord(rec, b.applied.createdAt), facts);
    assert.equal(backoffFromRecord(rec, '2030-01-01T00:00:00Z'), undefined, 'a container created again since is another one');
    // A new `acetate run`: the same exit is not counted again, the next one is the third.
    const t2 = new CrashLoopTracker({}, clock);
    t2.seed(web.key, JSON.parse(JSON.stringify(rec)));
    assert.deepEqual(t2.observe(b), facts);
    clock.advance(facts.restartAt - clock.now());
    t2.noteStarted(web.key);
    clock.advance(1000);
    assert.equal(t2.observe(exited(1, { restartCount: 2 })).streak, 3);
  });
});
