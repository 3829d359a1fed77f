import assert from 'node:assert/strict';
import { CrashLoopTracker, policyAllowsRestart } from '../../src/controller/crashloop.js';
import { FakeClock } from '../../src/contracts/clock.js';
import type { ProcessInfo } from '../../src/runtime/runtime.js';

describe('crash-loop backoff', () => {
  let clock: FakeClock;
  let t: CrashLoopTracker;
  beforeEach(() => {
    clock = new FakeClock();
    t = new CrashLoopTracker({}, clock);
  });

  const iso = (ms: number): string => new Date(ms).toISOString();
  let runs = 0;
  /** A process that ran for ranMs and exited now. */
  function exited(exitCode: number | undefined, ranMs = 1000): ProcessInfo {
    runs++;
    const p: ProcessInfo = { state: 'exited', startedAt: iso(clock.now() - ranMs), finishedAt: iso(clock.now()), pid: 1000 + runs };
    if (exitCode !== undefined) p.exitCode = exitCode;
    return p;
  }

  it('restartPolicy decides whether an exit is restarted', () => {
    assert.equal(policyAllowsRestart('Always', 0), true);
    assert.equal(policyAllowsRestart('Always', 1), true);
    assert.equal(policyAllowsRestart('OnFailure', 0), false);
    assert.equal(policyAllowsRestart('OnFailure', 137), true);
    // Unknown (its supervisor was gone when it ended): it may have succeeded, so it is not run again.
    assert.equal(policyAllowsRestart('OnFailure', undefined), false);
    assert.equal(policyAllowsRestart('Always', undefined), true);
    assert.equal(t.decide('k', { policy: 'OnFailure', process: exited(undefined) }).kind, 'never');
    assert.equal(policyAllowsRestart('Never', 1), false);
    assert.equal(t.decide('k', { policy: 'Never', process: exited(1) }).kind, 'never');
    assert.equal(t.decide('k', { policy: 'OnFailure', process: exited(0) }).kind, 'never');
  });

  it('waits 10s, 20s, 40s … capped at 5 min between consecutive crashes', () => {
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const p = exited(1);
      const d = t.decide('k', { policy: 'Always', process: p, restartCount: i });
      assert.equal(d.kind, 'later');
      if (d.kind !== 'later') return;
      delays.push(d.delayMs);
      assert.match(d.reason, /back-off (\d+m)?(\d+s)? restarting failed container: exited with code 1/);
      clock.advance(d.delayMs - 1);
      assert.equal(t.decide('k', { policy: 'Always', process: p, restartCount: i }).kind, 'later', 'same exit, not yet');
      clock.advance(1);
      assert.equal(t.decide('k', { policy: 'Always', process: p, restartCount: i }).kind, 'now');
      t.noteStarted('k');
      clock.advance(1000); // runs 1s, then crashes again
    }
    assert.deepEqual(delays, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    assert.equal(t.streak('k'), 8);
  });

  it('the same exit seen many times counts once', () => {
    const p = exited(2);
    for (let i = 0; i < 5; i++) t.decide('k', { policy: 'OnFailure', process: p, restartCount: 0 });
    assert.equal(t.streak('k'), 1);
  });

  it('a run of 10 minutes resets the streak', () => {
    for (let i = 0; i < 4; i++) {
      const d = t.decide('k', { policy: 'Always', process: exited(1), restartCount: i });
      if (d.kind === 'later') clock.advance(d.delayMs);
      t.noteStarted('k');
      clock.advance(1000);
    }
    assert.equal(t.streak('k'), 4);
    clock.advance(10 * 60_000);
    const d = t.decide('k', { policy: 'Always', process: exited(1, 10 * 60_000), restartCount: 4 });
    assert.equal(t.streak('k'), 1);
    assert.equal(d.kind, 'later');
    if (d.kind === 'later') assert.equal(d.delayMs, 10_000);
  });

  it('an exit long ago (e.g. while acetate was down) restarts now', () => {
    const p: ProcessInfo = { state: 'exited', exitCode: 1, startedAt: iso(clock.now() - 120_000), finishedAt: iso(clock.now() - 60_000) };
    assert.equal(t.decide('k', { policy: 'Always', process: p }).kind, 'now');
  });

  it('without timestamps, uses the time the exit was first seen and the time of the last start', () => {
    t.noteStarted('k');
    clock.advance(5000);
    const d = t.decide('k', { policy: 'Always', process: { state: 'exited', exitCode: 3 }, restartCount: 0 });
    assert.equal(d.kind, 'later');
    if (d.kind === 'later') assert.equal(d.at, clock.now() + 10_000);
  });

  it('honours injected base and cap, and forget()', () => {
    t = new CrashLoopTracker({ baseMs: 100, maxMs: 300 }, clock);
    const d1 = t.decide('k', { policy: 'Always', process: exited(1) });
    assert.ok(d1.kind === 'later' && d1.delayMs === 100);
    t.forget('k');
    assert.equal(t.streak('k'), 0);
    assert.equal(t.restartAt('k'), undefined);
  });
});
