/**
 * The prober's node-wide cap (src/controller/probes/fair-limiter.ts) on a fake clock: at most
 * `slots` checks start at once; waiting checks get free slots in turn by container (a container
 * with many waiting checks gets one per turn); a check still running after releaseAfterMs gives
 * its slot back and runs on; a check aborted while it waits never runs.
 */
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/contracts/clock.js';
import { FairLimiter } from '../../src/controller/probes/fair-limiter.js';

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('FairLimiter (fake clock)', () => {
  let clock: FakeClock;
  let started: string[];
  let releases: Map<string, () => void>;

  /** A check named name of container key that runs until release(name). */
  const check = (limiter: FairLimiter, key: string, name: string, signal?: AbortSignal) =>
    limiter.run(
      key,
      () =>
        new Promise<string>((resolve) => {
          started.push(name);
          releases.set(name, () => resolve(name));
        }),
      signal,
    );
  const release = async (name: string) => {
    releases.get(name)!();
    await flush();
  };

  beforeEach(() => {
    clock = new FakeClock();
    started = [];
    releases = new Map();
  });

  it('at most `slots` at once; free slots go round-robin by container, not in call order', async () => {
    const limiter = new FairLimiter({ slots: 1, releaseAfterMs: 1000, clock });
    const all = [check(limiter, 'a', 'a1'), check(limiter, 'a', 'a2'), check(limiter, 'a', 'a3'), check(limiter, 'b', 'b1'), check(limiter, 'c', 'c1')];
    await flush();
    assert.deepEqual(started, ['a1']);
    assert.deepEqual({ active: limiter.activeCount, pending: limiter.pendingCount }, { active: 1, pending: 4 });
    await release('a1');
    await release('a2');
    await release('b1');
    await release('c1');
    await release('a3');
    assert.deepEqual(started, ['a1', 'a2', 'b1', 'c1', 'a3'], "a's third check waits its turn behind b and c");
    assert.deepEqual(await Promise.all(all), ['a1', 'a2', 'a3', 'b1', 'c1']);
    assert.deepEqual({ active: limiter.activeCount, pending: limiter.pendingCount }, { active: 0, pending: 0 });
    assert.equal(clock.pending(), 0, 'no release timer left');
  });

  it('a check still running after releaseAfterMs gives its slot back and runs on; hanging checks never hold the node', async () => {
    const limiter = new FairLimiter({ slots: 2, releaseAfterMs: 1000, clock });
    // Container "hang" has three checks that never end; "sick" has one waiting behind them.
    const hung = [check(limiter, 'hang', 'h1'), check(limiter, 'hang', 'h2'), check(limiter, 'hang', 'h3')];
    const sick = check(limiter, 'sick', 's1');
    await flush();
    assert.deepEqual(started, ['h1', 'h2']);
    clock.advance(999);
    await flush();
    assert.deepEqual(started, ['h1', 'h2'], 'slots held while the checks are young');
    clock.advance(1);
    await flush();
    assert.deepEqual(started, ['h1', 'h2', 'h3', 's1'], 'both young checks gave their slots back: the waiting ones start, hung or not');
    await release('s1');
    assert.equal(await sick, 's1');
    for (const h of ['h1', 'h2', 'h3']) releases.get(h)!();
    assert.deepEqual(await Promise.all(hung), ['h1', 'h2', 'h3'], 'the slow checks ran on to their end');
    clock.advance(1000);
    await flush();
    assert.equal(limiter.activeCount, 0);
  });

  it('a check aborted while it waits is not run and leaves no trace; one aborted before it starts neither', async () => {
    const limiter = new FairLimiter({ slots: 1, releaseAfterMs: 1000, clock });
    const first = check(limiter, 'a', 'a1');
    const ac = new AbortController();
    const waiting = check(limiter, 'b', 'b1', ac.signal);
    await flush();
    ac.abort(new Error('stopping'));
    await assert.rejects(waiting, /stopping/);
    assert.equal(limiter.pendingCount, 0);
    await assert.rejects(check(limiter, 'c', 'c1', ac.signal), /stopping/);
    await release('a1');
    assert.equal(await first, 'a1');
    assert.deepEqual(started, ['a1']);
  });
});
