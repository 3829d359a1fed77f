/**
 * KubeSource against the fake API server: what its snapshot says, when it wakes the loop, the
 * finalizer flow (added before a container may exist, removed once it is gone), and files and
 * Kubernetes claiming the same name.
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
import { containerObj, NODE, startFake } from './helpers.js';

describe('kube: source (snapshot, changes, finalizers)', () => {
  let fake: FakeApiServer;
  let api: KubeApi;
  let source: KubeSource | undefined;
  let changes: (string[] | 'all')[];
  let log: MemoryLogger;

  async function start(opts: Partial<KubeSourceOptions> = {}): Promise<KubeSource> {
    changes = [];
    log = new MemoryLogger();
    source = new KubeSource({
      node: NODE,
      api,
      logger: log,
      capacity: { cpuMillis: 8000, memoryBytes: 16 * 2 ** 30 },
      informer: { backoff: { baseMs: 20, maxMs: 100 } },
      finalizer: { backoff: { baseMs: 20, maxMs: 100 }, sweepIntervalMs: 50 },
      ...opts,
    });
    await source.start((keys) => changes.push(keys));
    await source.waitForSync();
    return source;
  }

  beforeEach(async () => {
    ({ fake, api } = await startFake());
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await fake.close();
  });

  it('is incomplete and empty until the first list, complete after', async () => {
    const hold = fake.hold({ method: 'GET', path: '/apis/acetate.dev/v1alpha1/containers' });
    const s = new KubeSource({ node: NODE, api, capacity: false, waitForSync: false });
    source = s;
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
    source = s;
    let started = false;
    const starting = s.start(() => undefined).then(() => (started = true));
    await waitFor(() => s.informer.stats.listFailures >= 2, { what: 'failing lists' });
    assert.equal(started, false);
    assert.match(s.snapshot().incompleteReason!, /not been listed yet: list containers: injected 503/);
    await s.stop();
    await starting;
    assert.equal(s.synced(), false);
  });

  it('adds the finalizer first: the object is protected (not desired) until it carries it, then desired', async () => {
    fake.create(containerObj('web'));
    const s = await start();
    // as listed: no finalizer yet
    await waitFor(() => fake.get('default', 'web')!.metadata.finalizers?.includes(FINALIZER), { what: 'the finalizer' });
    await waitFor(() => s.snapshot().containers.has('default/web'), { what: 'web desired' });
    const snap = s.snapshot();
    assert.equal(snap.protectedKeys.size, 0);
    assert.equal(snap.problems.length, 0);
    assert.equal(snap.containers.get('default/web')!.source.kind, 'kube');
    assert.ok(changes.some((c) => c !== 'all' && c.includes('default/web')), 'the loop is told when it becomes desired');
    assert.equal(s.finalizers.stats.added, 1);
  });

  it('an object whose finalizer cannot be added stays protected with a problem saying why', async () => {
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 403, { times: 100, message: 'containers.acetate.dev "web" is forbidden: User cannot patch' });
    fake.create(containerObj('web'));
    const s = await start();
    await waitFor(() => s.snapshot().problems.length === 1, { what: 'the problem' });
    const snap = s.snapshot();
    assert.ok(snap.protectedKeys.has('default/web'));
    assert.equal(snap.containers.size, 0);
    assert.equal(snap.problems[0]!.kind, 'unreadable');
    assert.match(snap.problems[0]!.message, /cannot add finalizer acetate.dev\/cleanup: .*forbidden/);
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
    assert.equal(fake.get('default', 'theirs')!.metadata.finalizers, undefined, 'no finalizer on objects of other nodes');
    fake.update('default', 'mine', (o) => (o.spec.nodeName = 'node-b'));
    await waitFor(() => !s.snapshot().containers.has('default/mine'), { what: 'mine gone' });
    assert.deepEqual(changes[changes.length - 1], ['default/mine']);
  });

  it('deletion: not desired any more; the finalizer goes once the loop says the container is gone, then the object', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    assert.ok(s.snapshot().containers.has('default/web'));
    fake.remove('default', 'web');
    await waitFor(() => !s.snapshot().containers.has('default/web'), { what: 'web not desired' });
    assert.equal(s.snapshot().protectedKeys.has('default/web'), false);
    assert.ok(fake.get('default', 'web'), 'the object waits for acetate');
    // the loop reconciled: destroyed → neither desired nor actual → statusSink.remove(key)
    await s.statusSink.remove('default/web');
    await waitFor(() => fake.get('default', 'web') === undefined, { what: 'the object to go' });
    assert.equal(s.finalizers.stats.removed, 1);
    assert.ok(log.has('info', /removed finalizer acetate.dev\/cleanup/));
  });

  it('deletion with an actualExists callback: the finalizer stays while the container exists and goes once it is gone', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER, 'other.io/keep'] }));
    let exists = true;
    let asked = 0;
    const s = await start({
      actualExists: async () => {
        asked++;
        return exists;
      },
    });
    fake.remove('default', 'web');
    await waitFor(() => asked >= 2, { what: 'the runtime to be asked twice (on the change, then by the sweep)' });
    assert.ok(fake.get('default', 'web')!.metadata.finalizers!.includes(FINALIZER), 'kept while the container exists');
    assert.equal(s.finalizers.stats.removed, 0);
    exists = false; // the loop destroyed the container; the periodic check notices
    await waitFor(() => !fake.get('default', 'web')!.metadata.finalizers!.includes(FINALIZER), { what: 'our finalizer to go' });
    assert.deepEqual(fake.get('default', 'web')!.metadata.finalizers, ['other.io/keep'], 'other finalizers are kept');
  });

  it('onKeyConverged with actualExists: true keeps the finalizer; a 409 while removing is re-read and retried', async () => {
    fake.create(containerObj('web', { finalizers: [FINALIZER] }));
    const s = await start();
    fake.remove('default', 'web');
    await waitFor(() => s.informer.get('default/web')?.metadata.deletionTimestamp, { what: 'the deletion' });
    s.onKeyConverged('default/web', { actualExists: true });
    await s.finalizers.flush();
    assert.ok(fake.get('default', 'web'));
    fake.failNext({ method: 'PATCH', path: /containers\/web$/ }, 409, { reason: 'Conflict' });
    s.onKeyConverged('default/web', { actualExists: false });
    await waitFor(() => fake.get('default', 'web') === undefined, { what: 'the object to go' });
    assert.equal(s.finalizers.stats.conflicts, 1);
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
