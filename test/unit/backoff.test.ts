import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffDelay, KeyedBackoff } from '../../src/util/backoff.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { formatDuration, parseDuration } from '../../src/util/duration.js';

describe('backoff', () => {
  it('doubles from the base up to the cap', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffDelay(n)),
      [1000, 2000, 4000, 8000],
    );
    assert.equal(backoffDelay(9), 256_000);
    assert.equal(backoffDelay(10), 300_000);
    assert.equal(backoffDelay(10_000), 300_000);
    assert.equal(backoffDelay(0), 0);
    assert.equal(backoffDelay(3, { baseMs: 10, maxMs: 25 }), 25);
  });

  it('property: monotonic, capped, never below the base', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 200 }), (n, base, mult) => {
        const max = base * mult;
        const d = backoffDelay(n, { baseMs: base, maxMs: max });
        assert.ok(d >= Math.min(base, max) && d <= max);
        assert.ok(backoffDelay(n + 1, { baseMs: base, maxMs: max }) >= d);
      }),
    );
  });

  it('jitter takes up to its fraction off the delay, from the injected random source', () => {
    assert.equal(backoffDelay(3, { baseMs: 1000, jitter: 0.25, random: () => 0 }), 3000);
    assert.equal(backoffDelay(3, { baseMs: 1000, jitter: 0.25, random: () => 0.5 }), 3500);
    assert.equal(backoffDelay(3, { baseMs: 1000, jitter: 0.25, random: () => 1 }), 4000);
    assert.equal(backoffDelay(20, { baseMs: 1000, maxMs: 30_000, jitter: 0.25, random: () => 0 }), 22_500, 'the cap is jittered too');
  });

  it('KeyedBackoff counts per key and resets', () => {
    const b = new KeyedBackoff({ baseMs: 100, maxMs: 1000 });
    assert.equal(b.next('a'), 100);
    assert.equal(b.next('a'), 200);
    assert.equal(b.next('b'), 100);
    assert.equal(b.count('a'), 2);
    b.reset('a');
    assert.equal(b.count('a'), 0);
    assert.equal(b.next('a'), 100);
    assert.deepEqual(b.keys().sort(), ['a', 'b']);
  });
});

describe('clock', () => {
  it('FakeClock fires timers in order, including timers set while advancing', () => {
    const c = new FakeClock(0);
    const fired: string[] = [];
    c.setTimeout(() => fired.push('b@20'), 20);
    const h = c.setTimeout(() => fired.push('never'), 15);
    c.setTimeout(() => {
      fired.push('a@10');
      c.setTimeout(() => fired.push('c@15'), 5);
    }, 10);
    c.clearTimeout(h);
    c.advance(19);
    assert.deepEqual(fired, ['a@10', 'c@15']);
    assert.equal(c.now(), 19);
    c.advance(1);
    assert.deepEqual(fired, ['a@10', 'c@15', 'b@20']);
    assert.equal(c.pending(), 0);
  });

  it('parses and formats durations', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('100ms'), 100);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('250', { bareUnit: 'ms' }), 250);
    assert.equal(parseDuration('2'), 2000); // a bare number in a flag is seconds
    assert.throws(() => parseDuration('soon'), /not a duration/);
    assert.throws(() => parseDuration('10s later'), /not a duration/);
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(0), '0ms');
    assert.equal(formatDuration(3_600_000), '1h');
  });
});
