/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * The status writer: only changed status reaches the status subresource, conditions keep their
 * lastTransitionTime, rejected generations are observed; one attempt per call, failures typed and
 * retried by the work queue alone (409 at once on a re-read object, 404 done, 422 parked, 5xx
 * backoff).
 */
import assert from 'node:assert/strict';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import type { KubeApi } from '../../src/sources/kube/client.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { FINALIZER } from '../../src/sources/kube/constants.js';
import { computeStatus } from '../../src/controller/status.js';
import { FakeClock } from '../../src/contracts/clock.js';
import type { ContainerStatus } from '../../src/api/types.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import { waitFor } from '../support/wait.js';
import { containerObj, fakeApiServerEachTest, NODE, stepLikeTheLoop } from './helpers.js';
import { WorkQueue } from '../../src/controller/queue.js';
import { ConflictError, GoneError, TransientError } from '../../src/contracts/errors.js';

const STATUS_PATH = /\/containers\/[^/]+\/status$/;

describe('kube: status writer', () => {
  let fake: FakeApiServer;
  let api: KubeApi;
  const { stopAfterTest } = fakeApiServerEachTest((started) => ({ fake, api } = started));

  async function start(clock?: FakeClock): Promise<KubeSource> {
    const source = stopAfterTest(
      new KubeSource({
        node: NODE,
        api,
        capacity: { cpuMillis: 4000, memoryBytes: 8 * 2 ** 30 },
        clock,
        informer: { backoff: { baseMs: 20, maxMs: 100 }, resyncIntervalMs: 0 },
      }),
    );
    await source.start(() => undefined);
    await source.waitForSync();
    return source;
  }

  /** A status as the loop computes it for a running container of the object's generation. */
  function running(s: KubeSource, key: string, pid = 4242, now = Date.UTC(2024, 0, 1)): ContainerStatus {
    const desired = s.snapshot().containers.get(key)!;
    const actual: ActualContainer = {
      key,
      namespace: desired.namespace,
      name: desired.name,
      id: 'x',
      applied: { namespace: desired.namespace, name: desired.name, spec: desired.spec, specHash: 'h', source: desired.source, createdAt: '' },
      process: { state: 'running', pid, startedAt: '2024-01-01T00:00:00.000Z' },
      limits: desired.spec.resources,
      restartCount: 0,
    };
    return computeStatus({ key, desired, actual, node: NODE, now });
  }

  const puts = () => fake.requests.filter((r) => r.method === 'PUT' && STATUS_PATH.test(r.path));

  it('writes through the status subresource, then not again while nothing changed', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    const st = running(s, 'default/web');
    await s.statusSink.publish('default/web', st);
    assert.equal(puts().length, 1);
    assert.equal(puts()[0]!.path, '/apis/acetate.dev/v1alpha1/namespaces/default/containers/web/status');
    const obj = fake.get('default', 'web')!;
    assert.equal(obj.status.observedGeneration, 1);
    assert.equal(obj.status.phase, 'Running');
    assert.equal(obj.status.pid, 4242);
    assert.deepEqual(obj.status.resources, { cpu: '500m', memory: '64Mi' });
    const ready = obj.status.conditions.find((c: any) => c.type === 'Ready');
    assert.deepEqual(Object.keys(ready).sort(), ['lastTransitionTime', 'message', 'observedGeneration', 'reason', 'status', 'type']);
    assert.equal(ready.status, 'True');
    // the same status again, before and after the watch delivered our write
    await s.statusSink.publish('default/web', st);
    await waitFor(() => s.informer.get('default/web')?.status?.phase === 'Running', { what: 'our write seen by the watch' });
    await s.statusSink.publish('default/web', running(s, 'default/web', 4242, Date.UTC(2024, 0, 2)));
    assert.equal(puts().length, 1, 'unchanged status is not written');
    assert.ok(s.statusSink.stats.skipped >= 2);
    // a real change is written
    await s.statusSink.publish('default/web', running(s, 'default/web', 5555));
    assert.equal(puts().length, 2);
    assert.equal(fake.get('default', 'web')!.status.pid, 5555);
  });

  it('keeps lastTransitionTime of a condition whose status did not change (acetate restarted: its own memory is empty)', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    await s.statusSink.publish('default/web', running(s, 'default/web', 1, Date.UTC(2024, 0, 1)));
    const first = fake.get('default', 'web')!.status.conditions.find((c: any) => c.type === 'Ready').lastTransitionTime;
    // a later status computed without history says "now" for lastTransitionTime, with another pid
    await s.statusSink.publish('default/web', running(s, 'default/web', 2, Date.UTC(2024, 5, 1)));
    const second = fake.get('default', 'web')!.status.conditions.find((c: any) => c.type === 'Ready');
    assert.equal(second.lastTransitionTime, first);
    assert.equal(fake.get('default', 'web')!.status.pid, 2);
  });

  it('a status already stored (written by an earlier acetate) is not written again', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s0 = await start();
    const st = running(s0, 'default/web');
    await s0.statusSink.publish('default/web', st);
    await s0.stop();
    const s1 = await start();
    const before = puts().length;
    await s1.statusSink.publish('default/web', running(s1, 'default/web', 4242, Date.UTC(2030, 0, 1)));
    assert.equal(puts().length, before);
  });

  it('409 Conflict: a ConflictError; the queue retries at once, on the object read again, and the write lands', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    // someone else changes the object; our cached copy is stale when we write
    const hold = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' }); // the watch reconnect, if any
    fake.update('default', 'web', (o) => (o.metadata.labels = { touched: 'yes' }));
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 409, { reason: 'Conflict' });
    const st = running(s, 'default/web');
    await assert.rejects(s.statusSink.publish('default/web', st), ConflictError);
    const decisions = await stepLikeTheLoop(() => s.statusSink.publish('default/web', st));
    hold.release();
    assert.deepEqual(decisions, [{ key: 'default/web', action: 'forget' }], 'the retry wrote');
    assert.equal(s.statusSink.stats.conflicts, 1);
    assert.equal(fake.get('default', 'web')!.status.phase, 'Running');
    assert.equal(fake.get('default', 'web')!.metadata.labels.touched, 'yes');
    const gets = fake.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/containers/web'));
    assert.equal(gets.length, 1, 'one re-read');
  });

  it('a 409 every time: at once three times in a row, then the queue backs off', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 409, { reason: 'Conflict', times: 100 });
    const decisions = await stepLikeTheLoop(() => s.statusSink.publish('default/web', running(s, 'default/web')));
    assert.deepEqual(
      decisions.map((d) => d.delayMs),
      [0, 0, 0, 1000],
    );
    assert.equal(puts().length, 4);
  });

  it('a failed write (503) is a TransientError backed off by the queue; the writer keeps no retry of its own and the newest status wins', async () => {
    const clock = new FakeClock();
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start(clock);
    const q = new WorkQueue({ clock, backoff: { baseMs: 1000 } });
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 503, { times: 1 });
    await assert.rejects(s.statusSink.publish('default/web', running(s, 'default/web', 1)), TransientError);
    assert.equal(s.statusSink.stats.failures, 1);
    clock.advance(10 * 60_000);
    // Nothing to wait for: a retry timer of the writer's own would have fired in advance(); the
    // pause lets such a write reach the fake before asserting that none came.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(puts().length, 1, 'nothing written by the writer on its own');
    assert.equal(fake.get('default', 'web')!.status, undefined);
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 503, { times: 1 });
    assert.deepEqual(await stepLikeTheLoop(() => s.statusSink.publish('default/web', running(s, 'default/web', 1)), q), [
      { key: 'default/web', action: 'retry', delayMs: 1000 },
    ]);
    clock.advance(1000);
    assert.deepEqual(await stepLikeTheLoop(() => s.statusSink.publish('default/web', running(s, 'default/web', 2)), q), [
      { key: 'default/web', action: 'forget' },
    ]);
    assert.equal(fake.get('default', 'web')!.status.pid, 2);
    assert.equal(puts().length, 3);
  });

  it('a 422 is terminal: the key is parked until it changes', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 422, { reason: 'Invalid', message: 'status.phase: Unsupported value' });
    const q = new WorkQueue({ clock: new FakeClock() });
    assert.deepEqual(await stepLikeTheLoop(() => s.statusSink.publish('default/web', running(s, 'default/web')), q), [{ key: 'default/web', action: 'park' }]);
    assert.ok(q.isParked('default/web'));
    assert.equal(s.statusSink.stats.failures, 1);
  });

  it('publishes for keys it does not know (files, other nodes) are ignored; a vanished object (404) is done', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    const st = running(s, 'default/web');
    await s.statusSink.publish('default/file-only', st);
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 404, { reason: 'NotFound' });
    await assert.rejects(s.statusSink.publish('default/web', st), GoneError);
    fake.failNext({ method: 'PUT', path: STATUS_PATH }, 404, { reason: 'NotFound' });
    assert.deepEqual(await stepLikeTheLoop(() => s.statusSink.publish('default/web', st)), [{ key: 'default/web', action: 'forget' }]);
    assert.equal(puts().length, 2);
    assert.equal(s.statusSink.stats.failures, 0);
  });

  it('a finalizer patch and a status write in one reconcile do not conflict with each other', async () => {
    fake.create(containerObj('web'));
    const s = await start();
    // the watch is down, so the informer does not see the patch: the writer must use the patch's answer
    const hold = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' });
    fake.dropWatches();
    await hold.waitHeld(1);
    await s.finalizers.publish('default/web');
    const status = computeStatus({ key: 'default/web', problems: [], protectedKey: true, node: NODE, now: Date.UTC(2024, 0, 1) });
    await s.statusSink.publish('default/web', status);
    assert.equal(s.informer.get('default/web')!.metadata.finalizers, undefined, 'the informer is behind');
    hold.release();
    assert.equal(s.statusSink.stats.conflicts, 0);
    assert.equal(fake.requestsTo('PUT', STATUS_PATH).length, 1);
    assert.deepEqual(fake.get('default', 'web')!.metadata.finalizers, [FINALIZER]);
    assert.equal(fake.get('default', 'web')!.status.conditions.find((c: any) => c.type === 'Synced')?.status !== undefined, true);
  });

  it('an invalid object: Synced=False with the rejected generation observed', async () => {
    fake.create(containerObj('bad', { memory: '64Gi', finalizers: [FINALIZER] }));
    const s = await start();
    const snap = s.snapshot();
    const st = computeStatus({ key: 'default/bad', problems: snap.problems, protectedKey: true, node: NODE, now: Date.UTC(2024, 0, 1) });
    await s.statusSink.publish('default/bad', st);
    const status = fake.get('default', 'bad')!.status;
    assert.equal(status.observedGeneration, 1);
    const synced = status.conditions.find((c: any) => c.type === 'Synced');
    assert.equal(synced.status, 'False');
    assert.equal(synced.reason, 'InvalidManifest');
    assert.equal(synced.observedGeneration, 1);
    assert.match(synced.message, /kube:default\/bad: spec.resources.memory: memory 64Gi is more than node node-a has/);
  });

  it('a resize beyond node capacity of a running container: ResizePending=True, reason Infeasible', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    const ok = running(s, 'default/web');
    fake.update('default', 'web', (o) => (o.spec.resources.cpu = 16));
    await waitFor(() => s.snapshot().protectedKeys.has('default/web'), { what: 'the infeasible resize' });
    const st = { ...ok, conditions: ok.conditions };
    await s.statusSink.publish('default/web', st);
    const status = fake.get('default', 'web')!.status;
    const rp = status.conditions.find((c: any) => c.type === 'ResizePending');
    assert.equal(rp.status, 'True');
    assert.equal(rp.reason, 'Infeasible');
    assert.match(rp.message, /cpu 16 is more than node node-a has \(4\)/);
  });
});
