/** Periodic (util/periodic.ts): runs on the injected clock, one at a time, and survives failing runs. */
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/contracts/clock.js';
import { Periodic } from '../../src/util/periodic.js';

describe('Periodic', () => {
  it('runs every period on the injected clock and never after cancel', async () => {
    const clock = new FakeClock();
    let runs = 0;
    const p = new Periodic({ clock, ms: 1000, run: () => Promise.resolve(runs++), onError: (e) => assert.fail(String(e)) });
    p.start();
    clock.advance(999);
    assert.equal(runs, 0);
    clock.advance(1);
    await p.settled();
    assert.equal(runs, 1);
    clock.advance(1000);
    await p.settled();
    assert.equal(runs, 2);
    p.cancel();
    clock.advance(5000);
    await p.settled();
    assert.equal(runs, 2);
    assert.equal(clock.pending(), 0);
  });

  it('a run that throws before returning its promise, or rejects, is reported and the next run still comes', async () => {
    const clock = new FakeClock();
    const errors: string[] = [];
    let runs = 0;
    const run = (): Promise<void> => {
      runs++;
      if (runs === 1) throw new Error('sync throw'); // e.g. a listener throwing inside a plain function
      if (runs === 2) return Promise.reject(new Error('rejected'));
      return Promise.resolve();
    };
    const p = new Periodic({ clock, ms: 10, run, onError: (e) => errors.push((e as Error).message) });
    p.start();
    for (let i = 0; i < 3; i++) {
      clock.advance(10);
      await p.settled();
      await new Promise<void>((r) => setImmediate(r)); // let the finally schedule the next run
    }
    assert.deepEqual(errors, ['sync throw', 'rejected']);
    assert.equal(runs, 3);
    p.cancel();
  });
});
