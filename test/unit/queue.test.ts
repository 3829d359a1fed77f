import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WorkQueue, type AddCause } from '../../src/controller/queue.js';
import type { Requeue } from '../../src/controller/requeue.js';
import { FakeClock } from '../../src/contracts/clock.js';

function drainKeys(q: WorkQueue): string[] {
  const out: string[] = [];
  for (let k = q.tryGet(); k !== undefined; k = q.tryGet()) out.push(k);
  return out;
}

describe('WorkQueue', () => {
  let clock: FakeClock;
  let q: WorkQueue;
  beforeEach(() => {
    clock = new FakeClock();
    q = new WorkQueue({ clock });
  });

  it('collapses duplicate keys and keeps order of first add', () => {
    q.add('default/a');
    q.add('default/b');
    q.add('default/a');
    q.add('default/a', 'resync');
    assert.equal(q.len(), 2);
    assert.deepEqual(drainKeys(q), ['default/a', 'default/b']);
  });

  it('never hands out a key that is being processed; a re-add is queued after done', () => {
    q.add('k');
    assert.equal(q.tryGet(), 'k');
    q.add('k');
    q.add('k');
    assert.equal(q.tryGet(), undefined, 'k is in flight');
    assert.equal(q.len(), 0);
    const d = q.done('k', { kind: 'done' });
    assert.equal(d.action, 'requeue-now');
    assert.equal(q.tryGet(), 'k');
    q.done('k', { kind: 'done' });
    assert.equal(q.tryGet(), undefined);
  });

  it('get() waits for a key and resolves undefined on shutdown', async () => {
    const p1 = q.get();
    const p2 = q.get();
    q.add('x');
    assert.equal(await p1, 'x');
    q.shutdown();
    assert.equal(await p2, undefined);
    assert.equal(await q.get(), undefined);
    q.add('y');
    assert.equal(q.len(), 0, 'no adds after shutdown');
    q.done('x', { kind: 'done' });
  });

  it('done() throws for a key not in flight', () => {
    assert.throws(() => q.done('nope', { kind: 'done' }), /not being processed/);
  });

  it('retries with per-key exponential backoff: 1s doubling, capped at 5 min, reset on success', () => {
    const delays: number[] = [];
    q.add('k');
    for (let i = 0; i < 12; i++) {
      assert.equal(q.tryGet(), 'k');
      const d = q.done('k', { kind: 'backoff' });
      delays.push(d.delayMs!);
      assert.equal(q.tryGet(), undefined, 'not before the delay');
      clock.advance(d.delayMs! - 1);
      assert.equal(q.len(), 0);
      clock.advance(1);
      assert.equal(q.len(), 1);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000]);
    assert.equal(q.tryGet(), 'k');
    q.done('k', { kind: 'done' });
    assert.equal(q.failures('k'), 0);
    q.add('k');
    q.tryGet();
    assert.equal(q.done('k', { kind: 'backoff' }).delayMs, 1000, 'reset after success');
  });

  it('backoff is per key', () => {
    q.add('a');
    q.add('b');
    q.tryGet();
    q.done('a', { kind: 'backoff' });
    q.tryGet();
    q.done('b', { kind: 'done' });
    clock.advance(1000);
    q.tryGet();
    assert.equal(q.done('a', { kind: 'backoff' }).delayMs, 2000);
    q.add('b');
    q.tryGet();
    assert.equal(q.done('b', { kind: 'backoff' }).delayMs, 1000);
  });

  it('retries after a given delay without counting it as a failure', () => {
    q.add('k');
    q.tryGet();
    q.done('k', { kind: 'backoff' });
    clock.advance(1000);
    q.tryGet();
    const d = q.done('k', { kind: 'after', ms: 10_000 });
    assert.equal(d.delayMs, 10_000);
    assert.equal(q.failures('k'), 0);
    clock.advance(9_999);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.tryGet(), 'k');
  });

  it('addAfter keeps the earliest due time', () => {
    q.addAfter('k', 5000);
    q.addAfter('k', 10_000);
    assert.equal(q.dueAt('k'), clock.now() + 5000);
    q.addAfter('k', 1000);
    assert.equal(q.dueAt('k'), clock.now() + 1000);
    clock.advance(1000);
    assert.equal(q.tryGet(), 'k');
    assert.equal(q.delayedCount(), 0);
    clock.advance(10_000);
    assert.equal(q.len(), 0, 'superseded timers do not fire');
  });

  it('a terminal error parks the key until its next change; resyncs do not wake it', () => {
    q.add('k');
    q.tryGet();
    assert.equal(q.done('k', { kind: 'terminal' }).action, 'park');
    assert.ok(q.isParked('k'));
    q.add('k', 'resync');
    clock.advance(3_600_000);
    assert.equal(q.len(), 0);
    q.add('k', 'change');
    assert.equal(q.tryGet(), 'k');
    assert.ok(!q.isParked('k'));
    q.done('k', { kind: 'done' });
  });

  it('a resync does not cut a backoff short, a change does', () => {
    q.add('k');
    q.tryGet();
    q.done('k', { kind: 'backoff' });
    q.add('k', 'resync');
    assert.equal(q.len(), 0);
    q.add('k', 'change');
    assert.equal(q.tryGet(), 'k');
    q.done('k', { kind: 'done' });
  });

  it('a resync during a failing reconcile does not requeue it at once; a change does', () => {
    q.add('k');
    q.tryGet();
    q.add('k', 'resync');
    assert.equal(q.done('k', { kind: 'backoff' }).action, 'retry');
    assert.equal(q.len(), 0);
    clock.advance(1000);
    q.tryGet();
    q.add('k', 'change');
    assert.equal(q.done('k', { kind: 'terminal' }).action, 'requeue-now');
    assert.equal(q.tryGet(), 'k');
    q.done('k', { kind: 'done' });
  });

  it('a delayed retry supersedes a crash-loop delay when a change arrives', () => {
    q.add('k');
    q.tryGet();
    q.done('k', { kind: 'after', ms: 60_000 });
    q.add('k', 'change');
    assert.equal(q.delayedCount(), 0);
    assert.equal(q.tryGet(), 'k');
    q.done('k', { kind: 'done' });
  });

  it('shutdown drops delayed adds and whenIdle resolves once in-flight keys are done', async () => {
    q.add('a');
    q.addAfter('b', 1000);
    assert.equal(q.tryGet(), 'a');
    q.shutdown();
    assert.equal(q.delayedCount(), 0);
    let idle = false;
    const p = q.whenIdle().then(() => (idle = true));
    await Promise.resolve();
    assert.equal(idle, false);
    q.done('a', { kind: 'backoff' });
    await p;
    assert.equal(idle, true);
    assert.equal(q.delayedCount(), 0, 'no retry scheduled after shutdown');
  });

  it('property: never concurrent, duplicates collapse, no change is lost', () => {
    const keys = ['a', 'b', 'c', 'd'];
    const resultArb = fc.constantFrom<Requeue['kind']>('done', 'backoff', 'after', 'terminal');
    const cmd = fc.oneof(
      fc.record({ op: fc.constant('add' as const), key: fc.constantFrom(...keys), cause: fc.constantFrom<AddCause>('change', 'resync') }),
      fc.record({ op: fc.constant('addAfter' as const), key: fc.constantFrom(...keys), ms: fc.integer({ min: 0, max: 5000 }) }),
      fc.record({ op: fc.constant('get' as const) }),
      fc.record({ op: fc.constant('done' as const), index: fc.nat(), result: resultArb, ms: fc.integer({ min: 1, max: 20_000 }) }),
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 120 }), fc.integer({ min: 1, max: 3 }), (cmds, concurrency) => {
        const clock = new FakeClock();
        const q = new WorkQueue({ clock });
        const inFlight: string[] = [];
        /** Keys with a change not yet seen by a reconcile that started after it. */
        const owed = new Set<string>();
        const take = (): void => {
          if (inFlight.length >= concurrency) return;
          const k = q.tryGet();
          if (k === undefined) return;
          assert.ok(!inFlight.includes(k), `${k} handed out twice`);
          inFlight.push(k);
          owed.delete(k);
        };
        const toRequeue = (kind: Requeue['kind'], ms: number): Requeue => (kind === 'after' ? { kind, ms } : ({ kind } as Requeue));
        for (const c of cmds) {
          switch (c.op) {
            case 'add':
              q.add(c.key, c.cause);
              if (c.cause === 'change') owed.add(c.key);
              break;
            case 'addAfter':
              q.addAfter(c.key, c.ms);
              break;
            case 'get':
              take();
              break;
            case 'done': {
              if (inFlight.length === 0) break;
              const [k] = inFlight.splice(c.index % inFlight.length, 1);
              q.done(k!, toRequeue(c.result, c.ms));
              break;
            }
            case 'advance':
              clock.advance(c.ms);
              break;
          }
          assert.ok(q.len() <= keys.length, 'duplicates collapse');
          assert.equal(q.processingCount(), inFlight.length);
        }
        // Drain: finish everything successfully; every owed change must be processed.
        for (const k of inFlight.splice(0)) q.done(k, { kind: 'done' });
        for (let round = 0; round < 50 && (q.len() > 0 || q.delayedCount() > 0 || owed.size > 0); round++) {
          for (let k = q.tryGet(); k !== undefined; k = q.tryGet()) {
            owed.delete(k);
            q.done(k, { kind: 'done' });
          }
          clock.advance(10 * 60_000);
        }
        assert.deepEqual([...owed], [], 'changes lost');
      }),
      { numRuns: 300 },
    );
  });
});
