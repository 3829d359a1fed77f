/**
 * KubeSource against the fake API server: what its snapshot says, when it wakes the loop, the
 * finalizer flow (added by the loop's reconcile before a container may exist, removed once the
 * loop found it gone; failures typed, retried by the work queue only), and files and Kubernetes
 * claiming the same name.
 */
import assert from 'node:assert/strict';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import type { KubeApi } from '../../src/sources/kube/client.js';
import { KubeSource, type KubeSourceOptions } from '../../src/sources/kube/source.js';
import { FINALIZER } from '../../src/sources/kube/constants.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { mergeSnapshots } from '../../src/controller/merge-sources.js';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { DesiredSnapshot } from '../../src/contracts/source.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { waitFor } from '../support/wait.js';
import { containerObj, fakeApiServerEachTest, NODE, stepLikeTheLoop } from './helpers.js';
import { WorkQueue } from '../../src/controller/queue.js';
import { FakeClock } from '../../src/contracts/clock.js';

describe('kube: source (snapshot, changes, finalizers)', () => {
  let fake: FakeApiServer;
  let api: KubeApi;
  const { stopAfterTest } = fakeApiServerEachTest((started) => ({ fake, api } = started));
  let changes: (string[] | 'all')[];
  let log: MemoryLogger;

  async function start(opts: Partial<KubeSourceOptions> = {}): Promise<KubeSource> {
    changes = [];
    log = new MemoryLogger();
    const source = stopAfterTest(
      new KubeSource({
        node: NODE,
        api,
        logger: log,
        capacity: { cpuMillis: 8000, memoryBytes: 16 * 2 ** 30 },
        informer: { backoff: { baseMs: 20, maxMs: 100 } },
        ...opts,
      }),
    );
    await source.start((keys) => changes.push(keys));
    await source.waitForSync();
    return source;
  }

  it('is incomplete and empty until the first list, complete after', async () => {
    const hold = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' });
    const s = new KubeSource({ node: NODE, api, capacity: false, waitForSync: false });
    stopAfterTest(s);
    await s.start(() => undefined);
    await hold.waitHeld();
    assert.equal(s.synced(), false);
    assert.equal(s.snapshot().complete, false);
    assert.equal(s.snapshot().containers.size, 0);
    assert.match(s.snapshot().incompleteReason!, /the Containers of node node-a have not been listed yet/);
    assert.deepEqual(s.health(), { synced: false, complete: false });
    hold.release();
    await s.waitForSync();
    assert.equal(s.snapshot().complete, true);
    assert.equal(s.name, `kube:${NODE}`);
  });

  it('start() waits for the first list, and returns when stopped before the API server ever answered', async () => {
    fake.failNext({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' }, 503, { times: 1000 });
    const s = new KubeSource({ node: NODE, api, capacity: false, informer: { backoff: { baseMs: 10, maxMs: 20 } } });
    stopAfterTest(s);
    let started = false;
    const starting = s.start(() => undefined).then(() => (started = true));
    await waitFor(() => s.informer.stats.listFailures >= 2, { what: 'failing lists' });
    assert.equal(started, false);
    assert.match(s.snapshot().incompleteReason!, /not been listed yet: list containers: injected 503/);
    await s.stop();
    await starting;
    assert.equal(s.synced(), false);
  });

  it('adds the finalizer when the loop reconciles the key: protected (not desired) until it carries it, then desired', async () => {
    fake.create(containerObj('web'));
    const s = await start();
    assert.ok(s.snapshot().protectedKeys.has('default/web'), 'as listed: no finalizer yet, protected');
    assert.equal(fake.get('default', 'web')!.metadata.finalizers, undefined, 'nothing is written outside a reconcile');
    assert.deepEqual(await stepLikeTheLoop(() => s.finalizers.publish('default/web')), [{ key: 'default/web', action: 'forget' }]);
    assert.deepEqual(fake.get('default', 'web')!.metadata.finalizers, [FINALIZER]);
    await waitFor(() => s.snapshot().containers.has('default/web'), { what: 'web desired' });
    const snap = s.snapshot();
    assert.equal(snap.protectedKeys.size, 0);
    assert.equal(snap.problems.length, 0);
    assert.equal(snap.containers.get('default/web')!.source.kind, 'kube');
    assert.ok(
      changes.some((c) => c !== 'all' && c.includes('default/web')),
      'the loop is told when it becomes desired',
    );
    assert.equal(s.finalizers.stats.added, 1);
    await s.finalizers.publish('default/web');
    assert.equal(fake.requestsTo('PATCH', /containers\/web$/).length, 1, 'added once');
  });

  it('a finalizer that cannot be added: the key stays protected with a problem saying why, and the queue backs off', async () => {
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 403, { times: 100, message: 'containers.acetate.dev "web" is forbidden: User cannot patch' });
    fake.create(containerObj('web'));
    const s = await start();
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, backoff: { baseMs: 1000 } });
    assert.deepEqual(await stepLikeTheLoop(() => s.finalizers.publish('default/web'), q), [{ key: 'default/web', action: 'retry', delayMs: 1000 }]);
    assert.ok(
      changes.some((c) => c !== 'all' && c.includes('default/web')),
      'the new problem is news for the loop',
    );
    const snap = s.snapshot();
    assert.ok(snap.protectedKeys.has('default/web'));
    assert.equal(snap.containers.size, 0);
    assert.equal(snap.problems[0]!.kind, 'unreadable');
    assert.match(snap.problems[0]!.message, /cannot add finalizer acetate.dev\/cleanup: .*forbidden/);
    const patches = () => fake.requestsTo('PATCH', /containers\/web$/).length;
    assert.equal(patches(), 1, 'one attempt, no retry of its own');
    clock.advance(1000);
    assert.deepEqual(await stepLikeTheLoop(() => s.finalizers.publish('default/web'), q), [{ key: 'default/web', action: 'retry', delayMs: 2000 }]);
    assert.equal(patches(), 2);
  });

  it('invalid and infeasible objects: protected, one problem each, looked at again only when they change', async () => {
    fake.create(containerObj('ok', { finalizers: [FINALIZER] }));
    fake.create(containerObj('huge', { memory: '1Ti', finalizers: [FINALIZER] }));
    const s = await start();
    const snap = s.snapshot();
    assert.deepEqual([...snap.containers.keys()], ['default/ok']);
    assert.deepEqual([...snap.protectedKeys], ['default/huge']);
    assert.equal(snap.problems[0]!.field, 'spec.resources.memory');
    assert.match(snap.problems[0]!.message, /memory 1Ti is more than node node-a has/);
    assert.equal(s.snapshot(), snap, 'the snapshot is cached while nothing changes');
    // a status write changes resourceVersion only: no wake-up
    const before = changes.length;
    fake.updateStatus('default', 'huge', { phase: 'Pending' });
    fake.updateStatus('default', 'ok', { phase: 'Running' });
    await waitFor(() => s.informer.get('default/ok')?.status?.phase === 'Running', { what: 'the status event' });
    assert.equal(changes.length, before, 'status-only changes do not wake the loop');
    // fixing the spec does
    fake.update('default', 'huge', (o) => (o.spec.resources.memory = '1Gi'));
    await waitFor(() => s.snapshot().containers.has('default/huge'), { what: 'huge fixed' });
    assert.deepEqual(changes[changes.length - 1], ['default/huge']);
    assert.equal(s.snapshot().problems.length, 0);
  });

  it('objects of other nodes are ignored, also when moved away (the loop is told)', async () => {
    fake.create(containerObj('mine', { finalizers: [FINALIZER] }));
    fake.create(containerObj('theirs', { node: 'node-b' }));
    const s = await start();
    assert.deepEqual([...s.snapshot().containers.keys()], ['default/mine']);
    await s.finalizers.publish('default/theirs');
    assert.equal(fake.get('default', 'theirs')!.metadata.finalizers, undefined, 'no finalizer on objects of other nodes');
    fake.update('default', 'mine', (o) => (o.spec.nodeName = 'node-b'));
    await waitFor(() => !s.snapshot().containers.has('default/mine'), { what: 'mine gone' });
    assert.deepEqual(changes[changes.length - 1], ['default/mine']);
  });

  it('deletion: not desired any more; the finalizer goes once the loop finds the container gone (remove), then the object', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    assert.ok(s.snapshot().containers.has('default/web'));
    fake.remove('default', 'web');
    await waitFor(() => !s.snapshot().containers.has('default/web'), { what: 'web not desired' });
    assert.equal(s.snapshot().protectedKeys.has('default/web'), false);
    assert.ok(fake.get('default', 'web'), 'the object waits for acetate');
    assert.deepEqual(changes[changes.length - 1], ['default/web'], 'the loop is told');
    await s.finalizers.publish('default/web');
    assert.ok(fake.get('default', 'web')!.metadata.finalizers!.includes(FINALIZER), 'publish never removes it');
    // the loop reconciled: destroyed → neither desired nor actual → the sinks' remove(key)
    assert.deepEqual(await stepLikeTheLoop(() => s.finalizers.remove('default/web')), [{ key: 'default/web', action: 'forget' }]);
    await waitFor(() => fake.get('default', 'web') === undefined, { what: 'the object to go' });
    assert.equal(s.finalizers.stats.removed, 1);
    assert.ok(log.has('info', /removed finalizer acetate.dev\/cleanup/));
  });

  it('a 409 while removing: retried at once by the queue, on a re-read object; other finalizers are kept', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER, 'other.io/keep'] }));
    const s = await start();
    fake.remove('default', 'web');
    await waitFor(() => s.informer.get('default/web')?.metadata.deletionTimestamp, { what: 'the deletion' });
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 409, { reason: 'Conflict' });
    const decisions = await stepLikeTheLoop(() => s.finalizers.remove('default/web'));
    assert.deepEqual(decisions, [
      { key: 'default/web', action: 'retry', delayMs: 0 },
      { key: 'default/web', action: 'forget' },
    ]);
    assert.equal(s.finalizers.stats.conflicts, 1);
    assert.equal(fake.requestsTo('GET', /containers\/web$/).length, 1, 'one re-read');
    assert.deepEqual(fake.get('default', 'web')!.metadata.finalizers, ['other.io/keep']);
  });

  it('an object already gone (404) is done; a 422 when adding (deletion started) is decided again at once', async () => {
    fake.create(containerObj('web'));
    const s = await start();
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 404, { reason: 'NotFound' });
    assert.deepEqual(await stepLikeTheLoop(() => s.finalizers.publish('default/web')), [{ key: 'default/web', action: 'forget' }]);
    assert.equal(s.finalizers.addError('default/web'), undefined, 'not a problem of the key');
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 422, {
      reason: 'Invalid',
      message: 'no new finalizers can be added if the object is being deleted',
    });
    const decisions = await stepLikeTheLoop(() => s.finalizers.publish('default/web'));
    assert.deepEqual(
      decisions.map((d) => d.action),
      ['retry', 'forget'],
    );
    assert.deepEqual(fake.get('default', 'web')!.metadata.finalizers, [FINALIZER]);
  });

  it('after a restart or re-list, objects being deleted are named to the loop (after "all"), so their finalizer can go', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    fake.create(containerObj('kept', { finalizers: [FINALIZER] }));
    fake.remove('default', 'web');
    await start();
    const i = changes.indexOf('all');
    assert.ok(i >= 0, 'the first list tells the loop "all"');
    assert.deepEqual(changes[i + 1], ['default/web'], 'then the terminating key, which "all" does not cover once its container is gone');
  });

  it('a re-list after 410 tells the loop "all", and the snapshot is incomplete until it completes', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    fake.dropWatches();
    const hold = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' });
    await hold.waitHeld(1);
    fake.create(containerObj('new', { finalizers: [FINALIZER] }));
    fake.compact();
    hold.release();
    const relist = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' });
    await relist.waitHeld(1);
    await waitFor(() => !s.snapshot().complete, { what: 'incomplete' });
    assert.ok(s.snapshot().containers.has('default/web'), 'the last view is kept while incomplete');
    assert.match(s.snapshot().incompleteReason!, /re-listing the Containers of node node-a after the watch history expired \(410\)/);
    relist.release();
    await waitFor(() => s.snapshot().complete && s.snapshot().containers.has('default/new'), { what: 'the re-list' });
    assert.equal(changes[changes.length - 1], 'all');
  });

  it('files and Kubernetes declaring the same container: a conflict, the key protected', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    const m = containerObj('web', { node: NODE }) as unknown as ContainerManifest;
    const fileSnap: DesiredSnapshot = {
      containers: new Map([['default/web', normalizeManifest(m, { kind: 'file', file: '/etc/acetate/web.yaml', line: 1 })]]),
      protectedKeys: new Set(),
      problems: [],
      complete: true,
    };
    const merged = mergeSnapshots([
      { source: 'files:/etc/acetate', snapshot: fileSnap },
      { source: s.name, snapshot: s.snapshot() },
    ]);
    assert.equal(merged.containers.has('default/web'), false);
    assert.ok(merged.protectedKeys.has('default/web'));
    const conflicts = merged.problems.filter((p) => p.kind === 'conflict');
    assert.deepEqual(conflicts.map((p) => p.origin).sort(), ['/etc/acetate/web.yaml', 'kube:default/web']);
  });
});
