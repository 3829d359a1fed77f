/**
 * The loop's view of its containers (src/controller/observed.ts): fed by the reads the loop makes,
 * whole only once marked so, and never set back by a read that started before a newer one
 * answered. The interleavings are forced with a runtime whose reads the test releases one by one
 * (the real runtime cannot be made to answer in a chosen order); the view's use with real
 * containers is test/integration/loop-view.test.ts.
 */
import assert from 'node:assert/strict';
import { ObservedContainers } from '../../src/controller/observed.js';
import { recordFor } from '../../src/controller/view-protocol.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';
import type { ActualContainer, ListOptions, Runtime } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

/** get and list answer what `node` holds when the test releases them, in the order it chooses. */
class HeldReads {
  node = new Map<string, ActualContainer>();
  private held: (() => void)[] = [];
  readonly name = 'held';
  readonly #marker = 'the runtime itself';

  /** The next get throws this (a runc that does not answer, a record that cannot be read). */
  failNext?: Error;

  async get(key: string): Promise<ActualContainer | undefined> {
    const snapshot = this.node.get(key);
    const fail = this.failNext;
    this.failNext = undefined;
    await new Promise<void>((r) => this.held.push(r));
    if (fail) throw fail;
    return snapshot;
  }

  async list(opts?: ListOptions): Promise<ActualContainer[]> {
    const keys = opts?.keys ? [...opts.keys] : [...this.node.keys()];
    const snapshot = keys.flatMap((k) => this.node.get(k) ?? []);
    await new Promise<void>((r) => this.held.push(r));
    return snapshot;
  }

  /** Reads a private field: throws unless called with the runtime itself as `this`. */
  who(): string {
    return this.#marker;
  }

  /** Lets the i-th read still held answer. */
  async release(i: number): Promise<void> {
    const [r] = this.held.splice(i, 1);
    r!();
    await new Promise((res) => setImmediate(res));
  }

  /** A read that is the only one held, answered now. */
  async answer<T>(read: Promise<T>): Promise<T> {
    await this.release(0);
    return read;
  }
}

const running = (name: string, pid: number): ActualContainer => actualFrom(desired(name), { state: 'running', pid });

/** A view marked whole over a runtime whose reads the test releases. */
function wholeView(): { rt: HeldReads; view: ObservedContainers; wrapped: Runtime } {
  const rt = new HeldReads();
  const view = new ObservedContainers();
  view.markWhole();
  return { rt, view, wrapped: view.wrap(rt as unknown as Runtime) };
}

describe("the loop's observed view", () => {
  it('answers nothing until marked whole, then every container its reads found, sorted', async () => {
    const rt = new HeldReads();
    const view = new ObservedContainers();
    const wrapped = view.wrap(rt as unknown as Runtime);
    rt.node.set('default/b', running('b', 2));
    rt.node.set('default/a', running('a', 1));
    const reads = [wrapped.get('default/b'), wrapped.get('default/a')];
    await rt.release(0);
    await rt.release(0);
    await Promise.all(reads);
    assert.equal(view.containers(), undefined, 'not whole yet: readers read the node');
    view.markWhole();
    assert.deepEqual(
      view.containers()!.map((c) => [c.key, c.process.pid]),
      [
        ['default/a', 1],
        ['default/b', 2],
      ],
    );
    assert.equal((wrapped as unknown as HeldReads).who(), 'the runtime itself', "every other member is the runtime's own, bound to it");
  });

  it("keeps the newer of two reads when the older answers last (a poll's list beside a reconcile's get)", async () => {
    const { rt, view, wrapped } = wholeView();
    rt.node.set('default/a', running('a', 1));
    const oldList = wrapped.list({ keys: ['default/a'] }); // started first: sees pid 1
    rt.node.set('default/a', running('a', 2)); // restarted
    const newGet = wrapped.get('default/a'); // started second: sees pid 2
    await rt.release(1); // the get answers first
    await newGet;
    await rt.release(0); // then the old list
    await oldList;
    assert.equal(view.containers()![0]!.process.pid, 2, 'the older read did not set the view back');
  });

  it('forgets a container a read found gone, and an older read does not bring it back', async () => {
    const { rt, view, wrapped } = wholeView();
    rt.node.set('default/a', running('a', 1));
    rt.node.set('default/b', running('b', 3));
    await rt.answer(wrapped.list());
    const oldList = wrapped.list(); // sees a and b
    rt.node.delete('default/a'); // destroyed
    const gone = wrapped.get('default/a');
    await rt.release(1);
    assert.equal(await gone, undefined);
    assert.deepEqual(
      view.containers()!.map((c) => c.key),
      ['default/b'],
    );
    await rt.release(0);
    await oldList;
    assert.deepEqual(
      view.containers()!.map((c) => c.key),
      ['default/b'],
      'the older list did not bring a back',
    );
    // A full list drops what it did not find.
    rt.node.delete('default/b');
    await rt.answer(wrapped.list());
    assert.deepEqual(view.containers(), []);
  });

  it('answers nothing while a container is unknown (its last read failed), until a read of it succeeds', async () => {
    const { rt, view, wrapped } = wholeView();
    rt.node.set('default/a', running('a', 1));
    rt.node.set('default/b', running('b', 2));
    await rt.answer(wrapped.list());
    rt.failNext = new Error('runc did not answer');
    const failing = wrapped.get('default/a').then(
      () => undefined,
      (err: Error) => err,
    );
    await rt.release(0);
    assert.match((await failing)?.message ?? 'no error', /runc did not answer/, 'the error goes on to the caller');
    assert.equal(view.containers(), undefined, 'a container the loop could not read: readers read the node');
    await rt.answer(wrapped.get('default/a'));
    assert.deepEqual(
      view.containers()!.map((c) => c.key),
      ['default/a', 'default/b'],
    );
  });
  it('answers nothing for a container with news no read has followed yet, until a read that started after the news', async () => {
    const { rt, view, wrapped } = wholeView();
    rt.node.set('default/a', running('a', 1));
    const old = wrapped.get('default/a'); // started before the news
    view.invalidate('default/a'); // e.g. its process exited
    await rt.release(0);
    await old;
    assert.equal(view.containers(), undefined, 'a read from before the news does not count');
    rt.node.set('default/a', actualFrom(desired('a'), { state: 'exited', exitCode: 137 }));
    await rt.answer(wrapped.list({ keys: ['default/a'] }));
    assert.equal(view.containers()![0]!.process.state, 'exited');
    view.close();
    assert.equal(view.containers(), undefined, 'a stopping loop answers nothing');
  });
});

describe("the records in the loop's answer", () => {
  const record: StatusRecord = {
    key: 'default/a',
    namespace: 'default',
    name: 'a',
    incarnation: '2026-01-01T00:00:00Z',
    status: { phase: 'Running', conditions: [] },
    problems: [],
    recentActions: [{ kind: 'create', outcome: 'created', time: '2026-01-01T00:00:01Z' }],
    updatedAt: '2026-01-01T00:00:02Z',
    desired: { state: 'Running', template: 'host', command: [], restartPolicy: 'Always', resources: {} },
    crashLoop: { streak: 2, incarnation: '2026-01-01T00:00:00Z' },
  } as unknown as StatusRecord;

  it('for plan: only records with a crash-loop streak or a probe verdict, with what plan weighs of them', () => {
    assert.deepEqual(recordFor(record, 'plan', true), { key: 'default/a', incarnation: record.incarnation, crashLoop: record.crashLoop, unhealthy: undefined });
    const { crashLoop: _c, ...quiet } = record;
    assert.equal(recordFor(quiet as StatusRecord, 'plan', true), undefined);
  });

  it("for get: everything but describe's recent actions, and the summaries only of a container that does not exist", () => {
    const withContainer = recordFor(record, 'get', true);
    assert.deepEqual(Object.keys(withContainer).sort(), ['crashLoop', 'incarnation', 'key', 'name', 'namespace', 'problems', 'status']);
    const waiting = recordFor(record, 'get', false);
    assert.deepEqual(waiting.desired, record.desired, 'a waiting row shows what is declared');
    assert.equal((waiting as Partial<StatusRecord>).recentActions, undefined);
  });
});
