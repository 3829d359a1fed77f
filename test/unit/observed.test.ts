/**
 * The loop's view of its containers (src/controller/observed.ts): fed by the reads the loop makes,
 * whole only once marked so, and never set back by a read that started before a newer one
 * answered. The interleavings are forced with a runtime whose reads the test releases one by one
 * (the real runtime cannot be made to answer in a chosen order); the view's use with real
 * containers is test/integration/loop-view.test.ts.
 */
import assert from 'node:assert/strict';
import { ObservedContainers } from '../../src/controller/observed.js';
import type { ActualContainer, ListOptions, Runtime } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

/** get and list answer what `node` holds when the test releases them, in the order it chooses. */
class HeldReads {
  node = new Map<string, ActualContainer>();
  private held: (() => void)[] = [];
  readonly name = 'held';
  marker = 'the runtime itself';

  async get(key: string): Promise<ActualContainer | undefined> {
    const snapshot = this.node.get(key);
    await new Promise<void>((r) => this.held.push(r));
    return snapshot;
  }

  async list(opts?: ListOptions): Promise<ActualContainer[]> {
    const keys = opts?.keys ? [...opts.keys] : [...this.node.keys()];
    const snapshot = keys.flatMap((k) => this.node.get(k) ?? []);
    await new Promise<void>((r) => this.held.push(r));
    return snapshot;
  }

  who(): string {
    return this.marker;
  }

  /** Lets the i-th read still held answer. */
  async release(i: number): Promise<void> {
    const [r] = this.held.splice(i, 1);
    r!();
    await new Promise((res) => setImmediate(res));
  }
}

const running = (name: string, pid: number): ActualContainer => actualFrom(desired(name), { state: 'running', pid });

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
    const rt = new HeldReads();
    const view = new ObservedContainers();
    view.markWhole();
    const wrapped = view.wrap(rt as unknown as Runtime);
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
    const rt = new HeldReads();
    const view = new ObservedContainers();
    view.markWhole();
    const wrapped = view.wrap(rt as unknown as Runtime);
    rt.node.set('default/a', running('a', 1));
    rt.node.set('default/b', running('b', 3));
    const first = wrapped.list();
    await rt.release(0);
    await first;
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
    const emptied = wrapped.list();
    await rt.release(0);
    await emptied;
    assert.deepEqual(view.containers(), []);
  });
});
