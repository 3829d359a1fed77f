/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * Kubernetes mode end to end on this node: the real loop (Controller), the real runc runtime and
 * real containers, desired state from Container objects in the fake API server through the real
 * client. A user's story: create, resize in place, an object for another node, an invalid one,
 * a lost watch and a 410, a restart of acetate, a delete with the finalizer.
 *
 * Needs root, runc and conmon (as test/integration); skipped with a message otherwise.
 */
import assert from 'node:assert/strict';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { cgroupValue, isAlive } from '../support/proc.js';
import type { FakeApiServer, KObject } from '../support/fake-apiserver.js';
import type { Controller } from '../../src/controller/loop.js';
import type { KubeSource } from '../../src/sources/kube/source.js';
import { FINALIZER } from '../../src/sources/kube/constants.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { containerObj, NODE, startFake, startKubeController } from './helpers.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';

const MI = 2 ** 20;
const WAIT = { timeoutMs: 30_000, intervalMs: 100 };

function condition(obj: KObject | undefined, type: string): Record<string, any> | undefined {
  return obj?.status?.conditions?.find((c: { type: string }) => c.type === type);
}

describe('kube: scenarios with real runc containers', function () {
  this.timeout(180_000);
  let fake: FakeApiServer;
  let st: TmpState;
  let controller: Controller | undefined;
  let source: KubeSource | undefined;
  let log: MemoryLogger;

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'kube scenarios (real runc containers)');
    ({ fake } = await startFake());
    st = await tmpState('acetate-kube-');
  });

  after(async () => {
    await controller?.stop();
    if (st) {
      await st.cleanup();
      await assertNoLeaks(st.dir, { dirRemoved: true });
    }
    await fake?.close();
  });

  async function startAcetate(): Promise<void> {
    log = new MemoryLogger();
    ({ source, controller } = await startKubeController({ runtime: st.runtime, kubeConfig: fake.kubeConfig(), logger: log }));
    await waitFor(() => controller!.ready(), { ...WAIT, what: 'the loop to be ready' });
  }

  async function stopAcetate(): Promise<void> {
    await controller?.stop();
    controller = undefined;
    source = undefined;
  }

  const pidOf = async (key: string) => (await st.runtime.get(key))?.process.pid;
  const eventReasons = (name: string) =>
    fake
      .events('default')
      .filter((e) => e.involvedObject.name === name)
      .map((e) => e.reason);

  it('an object for this node: finalizer, container running, status Ready with observedGeneration, Created event', async () => {
    fake.create(containerObj('elsewhere', { node: 'node-b' }));
    await startAcetate();
    fake.create(containerObj('web', { cpu: '500m', memory: '64Mi' }));
    const obj = await waitFor(
      () => {
        const o = fake.get('default', 'web');
        return condition(o, 'Ready')?.status === 'True' && o!.status.observedGeneration === o!.metadata.generation ? o : undefined;
      },
      { ...WAIT, what: 'web Ready' },
    );
    assert.deepEqual(obj.metadata.finalizers, [FINALIZER]);
    const c = await st.runtime.get('default/web');
    assert.equal(c?.process.state, 'running');
    assert.equal(obj.status.pid, c!.process.pid);
    assert.equal(obj.status.phase, 'Running');
    assert.equal(obj.status.node, NODE);
    assert.deepEqual(obj.status.resources, { cpu: '500m', memory: '64Mi' });
    assert.equal(condition(obj, 'Synced')?.status, 'True');
    assert.equal(condition(obj, 'Ready')?.observedGeneration, obj.metadata.generation);
    await waitFor(() => eventReasons('web').includes('Created'), { ...WAIT, what: 'the Created event' });
    // the other node's object was seen before web and left alone
    assert.equal(await st.runtime.get('default/elsewhere'), undefined);
    assert.equal(fake.get('default', 'elsewhere')!.metadata.finalizers, undefined);
    assert.equal(fake.get('default', 'elsewhere')!.status, undefined);
  });

  it('a spec resize is applied in place (same pid) and the status shows the new limits read back', async () => {
    const pid = await pidOf('default/web');
    fake.update('default', 'web', (o) => {
      o.spec.resources.memory = '128Mi';
      o.spec.resources.cpu = '1';
    });
    const obj = await waitFor(
      () => {
        const o = fake.get('default', 'web');
        return o?.status?.observedGeneration === 2 && o.status.resources?.memory === '128Mi' ? o : undefined;
      },
      { ...WAIT, what: 'the resized status' },
    );
    assert.equal(obj.status.resources.cpu, '1');
    assert.equal(obj.status.pid, pid, 'same process');
    assert.equal(await pidOf('default/web'), pid);
    assert.equal(Number(await cgroupValue(pid!, 'memory', 'memory.limit_in_bytes')), 128 * MI);
    await waitFor(() => eventReasons('web').includes('Resized'), { ...WAIT, what: 'the Resized event' });
  });

  it('an object the node cannot satisfy: Synced=False on the object, no container, no retry storm', async () => {
    fake.create(containerObj('huge', { memory: '64Gi' }));
    const obj = await waitFor(
      () => {
        const o = fake.get('default', 'huge');
        return condition(o, 'Synced')?.status === 'False' ? o : undefined;
      },
      { ...WAIT, what: 'huge Synced=False' },
    );
    assert.match(condition(obj, 'Synced')!.message, /memory 64Gi is more than node node-a has/);
    assert.equal(obj.status.observedGeneration, 1);
    assert.equal(await st.runtime.get('default/huge'), undefined);
    const writes = () => fake.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/huge/status')).length;
    // Counted once the loop has seen its own writes and is idle: the finalizer's watch event starts
    // one more reconcile of huge, which may still be writing (queue.len() leaves out keys in flight).
    await waitFor(() => condition(source!.informer.get('default/huge'), 'Synced')?.status === 'False' && controller!.queue.isIdle(), {
      ...WAIT,
      what: 'the loop to see its own writes of huge',
    });
    const n = writes();
    await controller!.resync();
    await controller!.resync();
    await waitFor(() => controller!.queue.isIdle(), { ...WAIT, what: 'the queue to drain' });
    assert.equal(writes(), n, 'the same verdict is not written again');
    fake.remove('default', 'huge');
    await waitFor(() => !fake.get('default', 'huge'), { ...WAIT, what: 'huge to go' });
  });

  it('a dropped watch and a 410 re-list destroy nothing; changes made meanwhile are applied', async () => {
    const pid = await pidOf('default/web');
    fake.dropWatches({ abrupt: true });
    fake.create(containerObj('worker', { memory: '32Mi' }));
    fake.compact();
    fake.sendWatchError(410, 'Expired', 'too old resource version');
    await waitFor(async () => (await st.runtime.get('default/worker'))?.process.state === 'running', { ...WAIT, what: 'worker running' });
    await waitFor(() => source!.informer.stats.gone >= 1 || source!.informer.stats.watches >= 2, { ...WAIT, what: 'the watch to come back' });
    assert.equal(await pidOf('default/web'), pid, 'web untouched');
    assert.ok(isAlive(pid!));
    assert.equal(eventReasons('web').includes('Destroyed'), false);
    assert.equal(source!.snapshot().complete, true);
  });

  it('acetate restarted: adopts the running containers without restarting them', async () => {
    const before = { web: await pidOf('default/web'), worker: await pidOf('default/worker') };
    await stopAcetate();
    // Counted after the stop: stopping flushes the events still queued (the previous test's
    // "worker Created" may be posted only then), and only what the restarted loop posts counts.
    const events = fake.events('default').length;
    await startAcetate();
    await waitFor(() => controller!.queue.len() === 0 && controller!.reconcileCount >= 2, { ...WAIT, what: 'the first reconciles' });
    assert.deepEqual({ web: await pidOf('default/web'), worker: await pidOf('default/worker') }, before);
    assert.equal((await st.runtime.get('default/web'))!.restartCount, 0);
    const after = fake
      .events('default')
      .slice(events)
      .map((e) => `${e.involvedObject.name} ${e.reason}`);
    assert.deepEqual(
      after.filter((e) => /Created|Started|Restarted|Destroyed|Replaced/.test(e)),
      [],
      'no action on adoption',
    );
    assert.equal(condition(fake.get('default', 'web'), 'Ready')?.status, 'True');
  });

  it('delete: the finalizer keeps the object until the container is destroyed, then the object goes', async () => {
    const pid = await pidOf('default/web');
    fake.remove('default', 'web');
    assert.ok(fake.get('default', 'web')?.metadata.deletionTimestamp, 'kept by the finalizer');
    await waitFor(() => !fake.get('default', 'web'), { ...WAIT, what: 'the object to go' });
    assert.equal(await st.runtime.get('default/web'), undefined, 'the container was destroyed first');
    await waitFor(() => !isAlive(pid!), { ...WAIT, what: 'the process to end' });
    // Both come after the object went: the log line once the finalizer patch's answer is back,
    // the Event from the recorder's background worker. Waited for, not sampled.
    await waitFor(() => eventReasons('web').includes('Destroyed'), { ...WAIT, what: 'the Destroyed event' });
    await waitFor(() => log.has('info', /container default\/web is gone; removed finalizer/), { ...WAIT, what: 'the finalizer log line' });
    // the other one is still there
    assert.equal((await st.runtime.get('default/worker'))?.process.state, 'running');
    fake.remove('default', 'worker');
    await waitFor(() => !fake.get('default', 'worker'), { ...WAIT, what: 'worker to go' });
    assert.equal(await st.runtime.get('default/worker'), undefined);
  });
});
