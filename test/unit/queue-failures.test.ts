/**
 * Typed failures through WorkQueue.done, the one place that turns a failure into a delay:
 * requeueFor(err) by kind, then what the queue does with the key on a FakeClock.
 */
import assert from 'node:assert/strict';
import { WorkQueue } from '../../src/controller/queue.js';
import { requeueFor, IMMEDIATE_RETRIES } from '../../src/controller/requeue.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { ConflictError, GoneError, InvalidError, TransientError, failureKind } from '../../src/contracts/errors.js';
import { ActionError } from '../../src/apply/errors.js';
import { OciConfigError } from '../../src/runtime/runc/oci-config.js';
import { ImageProcessError } from '../../src/images/process.js';

describe('WorkQueue: typed failures (requeueFor → done)', () => {
  let clock: FakeClock;
  let q: WorkQueue;
  const KEY = 'default/web';

  beforeEach(() => {
    clock = new FakeClock();
    q = new WorkQueue({ clock, backoff: { baseMs: 1000, maxMs: 60_000 } });
  });

  /** Takes KEY (it must be ready now) and finishes it with the Requeue the error asks for. */
  function failOnce(err: unknown): ReturnType<WorkQueue['done']> {
    assert.equal(q.tryGet(), KEY, 'the key is ready');
    return q.done(KEY, requeueFor(err));
  }

  it('requeueFor maps each kind, also when the typed failure is a cause further down', () => {
    assert.equal(requeueFor(new ConflictError('409')).kind, 'now');
    assert.equal(requeueFor(new GoneError('404')).kind, 'done');
    assert.equal(requeueFor(new InvalidError('422')).kind, 'terminal');
    assert.equal(requeueFor(new TransientError('503')).kind, 'backoff');
    assert.equal(requeueFor(new Error('plain')).kind, 'backoff', 'an untyped error is transient');
    assert.equal(requeueFor('a string').kind, 'backoff');
    const wrapped = new Error('write failed', { cause: new Error('inner', { cause: new GoneError('404') }) });
    assert.equal(requeueFor(wrapped).kind, 'done');
  });

  it('conflict: retried at once, at most 3 times in a row, then with backoff', () => {
    q.add(KEY);
    for (let i = 1; i <= IMMEDIATE_RETRIES; i++) {
      const d = failOnce(new ConflictError(`conflict ${i}`));
      assert.deepEqual(d, { key: KEY, action: 'retry', delayMs: 0 }, `conflict ${i} retries now`);
    }
    const d = failOnce(new ConflictError('once more'));
    assert.equal(d.action, 'retry');
    assert.equal(d.delayMs, 1000, 'the 4th conflict in a row backs off');
    assert.equal(q.tryGet(), undefined, 'not ready before the backoff');
    clock.advance(999);
    assert.equal(q.tryGet(), undefined);
    clock.advance(1);
    assert.equal(q.tryGet(), KEY);
    // a success in between resets the count: the next conflict is retried at once again
    q.done(KEY, { kind: 'done' });
    q.add(KEY);
    assert.equal(failOnce(new ConflictError('after a success')).delayMs, 0);
  });

  it('gone: the key is forgotten (no retry, no backoff left)', () => {
    q.add(KEY);
    failOnce(new TransientError('503'));
    clock.advance(1000);
    const d = failOnce(new GoneError('404: the object was deleted'));
    assert.equal(d.action, 'forget');
    assert.equal(q.failures(KEY), 0);
    assert.equal(q.delayedCount(), 0);
    clock.advance(10 * 60_000);
    assert.equal(q.tryGet(), undefined, 'never comes back by itself');
  });

  it('invalid: parked until the key changes; resyncs do not wake it', () => {
    q.add(KEY);
    const d = failOnce(new InvalidError('422: status.phase: Unsupported value'));
    assert.equal(d.action, 'park');
    assert.ok(q.isParked(KEY));
    q.add(KEY, 'resync');
    clock.advance(10 * 60_000);
    assert.equal(q.tryGet(), undefined);
    q.add(KEY, 'change');
    assert.equal(q.tryGet(), KEY, 'a change wakes it');
  });

  it('transient: exponential backoff, reset by a success', () => {
    q.add(KEY);
    assert.equal(failOnce(new TransientError('503')).delayMs, 1000);
    clock.advance(1000);
    assert.equal(failOnce(new Error('ECONNRESET')).delayMs, 2000);
    clock.advance(2000);
    assert.equal(failOnce(new TransientError('timeout')).delayMs, 4000);
    clock.advance(4000);
    assert.equal(q.tryGet(), KEY);
    q.done(KEY, { kind: 'done' });
    assert.equal(q.failures(KEY), 0);
  });

  it('a runtime refusal is terminal: OciConfigError and ImageProcessError are InvalidErrors, through ActionError too', () => {
    for (const refusal of [
      new OciConfigError("mount containerPath 'a/b' must be absolute"),
      new ImageProcessError('the image has neither Entrypoint nor Cmd'),
    ]) {
      assert.equal(failureKind(refusal), 'invalid');
      assert.equal(requeueFor(refusal).kind, 'terminal');
      const action = new ActionError(KEY, 'create', { cause: refusal });
      assert.equal(failureKind(action), 'invalid', 'the kind is found on the cause chain');
      assert.equal(requeueFor(action).kind, 'terminal');
    }
    q.add(KEY);
    const d = failOnce(new ActionError(KEY, 'create', { cause: new OciConfigError('unknown capability FOO') }));
    assert.equal(d.action, 'park', 'not retried forever');
    assert.equal(requeueFor(new ActionError(KEY, 'create', { cause: new Error('runc: device busy') })).kind, 'backoff', 'a plain error is still retried');
  });
});
