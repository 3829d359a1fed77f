/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * The fake API server against its own promises (list, watch, 410, generation, status subresource,
 * finalizers, 409, selectors, patches, events), through the real client where the client can say
 * it and raw HTTP where it cannot.
 */
import assert from 'node:assert/strict';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { mergePatch, jsonPatch } from '../support/fake-apiserver.js';
import type { KubeApi } from '../../src/sources/kube/client.js';
import { KubeApiError } from '../../src/sources/kube/client.js';
import { containerObj, fakeApiServerEachTest, http, readWatch, startFake } from './helpers.js';

const BASE = '/apis/acetate.dev/v1alpha1';

describe('kube: fake API server', () => {
  let fake: FakeApiServer;
  let api: KubeApi;

  fakeApiServerEachTest((started) => ({ fake, api } = started));

  it('lists with a global, monotonically increasing resourceVersion', async () => {
    const rv0 = Number(fake.resourceVersion);
    const a = fake.create(containerObj('a'));
    const b = fake.create(containerObj('b', { namespace: 'other' }));
    assert.ok(Number(a.metadata.resourceVersion) > rv0);
    assert.ok(Number(b.metadata.resourceVersion) > Number(a.metadata.resourceVersion));
    const list = await api.listContainers({});
    assert.equal(list.resourceVersion, b.metadata.resourceVersion);
    assert.deepEqual(
      list.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`),
      ['default/a', 'other/b'],
    );
    assert.equal(a.metadata.generation, 1);
    assert.ok(a.metadata.uid);
    assert.match(a.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('a no-op update changes nothing: same resourceVersion, no event', async () => {
    const a = fake.create(containerObj('a'));
    const same = fake.update('default', 'a', () => undefined);
    assert.equal(same.metadata.resourceVersion, a.metadata.resourceVersion);
  });

  it('watches from a resourceVersion: history replay, then live ADDED/MODIFIED/DELETED', async () => {
    fake.create(containerObj('a'));
    const rv = fake.resourceVersion;
    fake.create(containerObj('b'));
    const p = readWatch(fake, `resourceVersion=${rv}`, 4);
    await waitWatchers(fake, 1);
    fake.update('default', 'b', (o) => (o.spec.command = ['/bin/true']));
    fake.create(containerObj('c'));
    fake.remove('default', 'c');
    const events = await p;
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED b', 'MODIFIED b', 'ADDED c', 'DELETED c'],
    );
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual(
      [...rvs].sort((x, y) => x - y),
      rvs,
      'events come in resourceVersion order',
    );
  });

  it('a watch from "" or "0" starts with the current objects as ADDED', async () => {
    fake.create(containerObj('a'));
    fake.create(containerObj('b'));
    const events = await readWatch(fake, 'resourceVersion=0', 2);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED a', 'ADDED b'],
    );
  });

  it('sends BOOKMARKs (only metadata.resourceVersion) when allowed, none otherwise', async () => {
    fake.create(containerObj('a'));
    const rv = fake.resourceVersion;
    const withBm = readWatch(fake, `resourceVersion=${rv}&allowWatchBookmarks=true`, 1);
    const without = readWatch(fake, `resourceVersion=${rv}`, 1);
    await waitWatchers(fake, 2);
    fake.bookmark();
    const [ev] = await withBm;
    assert.equal(ev.type, 'BOOKMARK');
    assert.deepEqual(ev.object, { kind: 'Container', apiVersion: 'acetate.dev/v1alpha1', metadata: { resourceVersion: rv } });
    // the watcher that did not ask for bookmarks sees the next real event first
    fake.create(containerObj('z'));
    assert.deepEqual(
      (await without).map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED z'],
    );
  });

  it('410 Gone for a resourceVersion older than the retained history: ERROR event, or HTTP 410 when configured', async () => {
    fake.create(containerObj('a'));
    const old = fake.resourceVersion;
    fake.setHistoryWindow(2);
    for (const n of ['b', 'c', 'd']) fake.create(containerObj(n));
    const events = await readWatch(fake, `resourceVersion=${old}`, 1);
    assert.equal(events[0].type, 'ERROR');
    assert.equal(events[0].object.kind, 'Status');
    assert.equal(events[0].object.code, 410);
    assert.equal(events[0].object.reason, 'Expired');
    // a resourceVersion inside the window is still fine
    const inWindow = String(Number(fake.resourceVersion) - 1);
    const ok = await readWatch(fake, `resourceVersion=${inWindow}`, 1);
    assert.equal(ok[0].type, 'ADDED');
    // compact(): everything older than now is gone
    const before = fake.resourceVersion;
    fake.create(containerObj('e'));
    fake.compact();
    assert.equal((await readWatch(fake, `resourceVersion=${before}`, 1))[0].object.code, 410);

    const { fake: f2 } = await startFake({ goneAsHttpStatus: true });
    try {
      f2.create(containerObj('a'));
      const rv = f2.resourceVersion;
      f2.create(containerObj('b'));
      f2.compact();
      const [r] = await readWatch(f2, `resourceVersion=${rv}`, 1);
      assert.equal(r.httpStatus, 410);
      assert.equal(r.body.code, 410);
    } finally {
      await f2.close();
    }
  });

  it('bumps generation only for spec changes (and once when deletion starts), never for status or metadata', async () => {
    fake.create(containerObj('a', { finalizers: ['x/y'] }));
    assert.equal(fake.update('default', 'a', (o) => (o.metadata.labels = { l: '1' })).metadata.generation, 1);
    assert.equal(fake.updateStatus('default', 'a', { phase: 'Running' }).metadata.generation, 1);
    assert.equal(fake.update('default', 'a', (o) => (o.spec.resources.memory = '128Mi')).metadata.generation, 2);
    const deleting = fake.remove('default', 'a')!;
    assert.equal(deleting.metadata.generation, 3);
    assert.ok(deleting.metadata.deletionTimestamp);
    assert.equal(deleting.metadata.deletionGracePeriodSeconds, 0);
    assert.equal(fake.remove('default', 'a')!.metadata.generation, 3, 'a second delete changes nothing');
  });

  it('status subresource: PUT …/status changes only status; PUT of the main resource ignores status', async () => {
    const a = fake.create(containerObj('a'));
    const viaStatus = await api.replaceContainerStatus({ ...a, spec: { template: 'changed' }, status: { phase: 'Running' } } as any);
    assert.equal(viaStatus.status?.phase, 'Running');
    assert.equal((viaStatus.spec as any).template, 'host');
    assert.equal(viaStatus.metadata.generation, 1);
    const main = await http(fake, 'PUT', `${BASE}/namespaces/default/containers/a`, {
      ...viaStatus,
      status: { phase: 'Failed' },
      spec: { ...(viaStatus.spec as object), template: 'other' },
    });
    assert.equal(main.status, 200);
    assert.equal(main.body.status.phase, 'Running');
    assert.equal(main.body.spec.template, 'other');
    assert.equal(main.body.metadata.generation, 2);
    // create drops status
    const created = await http(fake, 'POST', `${BASE}/namespaces/default/containers`, { ...containerObj('b'), status: { phase: 'Running' } });
    assert.equal(created.status, 201);
    assert.equal(created.body.status, undefined);
  });

  it('409 Conflict on a stale resourceVersion (PUT, status PUT, merge patch with resourceVersion); 422 without one', async () => {
    const a = fake.create(containerObj('a'));
    fake.update('default', 'a', (o) => (o.metadata.labels = { bump: '1' }));
    await assert.rejects(
      api.replaceContainerStatus({ ...a, status: { phase: 'Running' } } as any),
      (e: KubeApiError) => e.code === 409 && e.reason === 'Conflict',
    );
    const put = await http(fake, 'PUT', `${BASE}/namespaces/default/containers/a`, a);
    assert.equal(put.status, 409);
    assert.match(put.body.message, /the object has been modified/);
    await assert.rejects(
      api.patchContainer('default', 'a', { metadata: { resourceVersion: a.metadata.resourceVersion, labels: { x: 'y' } } }, 'merge'),
      (e: KubeApiError) => e.code === 409,
    );
    const noRv = structuredClone(a);
    delete noRv.metadata.resourceVersion;
    assert.equal((await http(fake, 'PUT', `${BASE}/namespaces/default/containers/a`, noRv)).status, 422);
  });

  it('finalizers: DELETE sets deletionTimestamp and keeps the object; removing the last finalizer deletes it (MODIFIED, DELETED)', async () => {
    fake.create(containerObj('a', { finalizers: ['acetate.dev/cleanup'] }));
    const rv = fake.resourceVersion;
    const p = readWatch(fake, `resourceVersion=${rv}`, 3);
    await waitWatchers(fake, 1);
    const del = await http(fake, 'DELETE', `${BASE}/namespaces/default/containers/a`);
    assert.equal(del.status, 200);
    assert.ok(del.body.metadata.deletionTimestamp);
    assert.ok(fake.get('default', 'a'), 'still there while the finalizer is');
    // no new finalizer while deleting
    const cur = fake.get('default', 'a')!;
    await assert.rejects(
      api.patchContainer(
        'default',
        'a',
        { metadata: { resourceVersion: cur.metadata.resourceVersion, finalizers: ['acetate.dev/cleanup', 'other/x'] } },
        'merge',
      ),
      (e: KubeApiError) => e.code === 422,
    );
    await api.patchContainer('default', 'a', { metadata: { resourceVersion: cur.metadata.resourceVersion, finalizers: [] } }, 'merge');
    assert.equal(fake.get('default', 'a'), undefined);
    const events = await p;
    assert.deepEqual(
      events.map((e) => e.type),
      ['MODIFIED', 'MODIFIED', 'DELETED'],
    );
    assert.ok(events[2].object.metadata.deletionTimestamp);
    // without finalizers, DELETE removes at once
    fake.create(containerObj('b'));
    const d2 = await http(fake, 'DELETE', `${BASE}/namespaces/default/containers/b`);
    assert.equal(d2.body.status, 'Success');
    assert.equal(fake.get('default', 'b'), undefined);
  });

  it('field selector spec.nodeName (400 when not a selectable field) and label selectors', async () => {
    fake.create(containerObj('a', { node: 'n1', labels: { 'acetate.dev/node': 'n1', tier: 'web' } }));
    fake.create(containerObj('b', { node: 'n2', labels: { 'acetate.dev/node': 'n2' } }));
    fake.create(containerObj('c', { node: 'n1' }));
    const names = async (sel: Parameters<KubeApi['listContainers']>[0]) => (await api.listContainers(sel)).items.map((i) => i.metadata.name);
    assert.deepEqual(await names({ fieldSelector: 'spec.nodeName=n1' }), ['a', 'c']);
    assert.deepEqual(await names({ fieldSelector: 'spec.nodeName!=n1' }), ['b']);
    assert.deepEqual(await names({ fieldSelector: 'metadata.name=b' }), ['b']);
    assert.deepEqual(await names({ labelSelector: 'acetate.dev/node=n1' }), ['a']);
    assert.deepEqual(await names({ labelSelector: 'acetate.dev/node in (n1,n2),!tier' }), ['b']);
    assert.deepEqual(await names({ labelSelector: 'tier' }), ['a']);
    await assert.rejects(
      api.listContainers({ fieldSelector: 'spec.template=host' }),
      (e: KubeApiError) => e.code === 400 && /field label not supported/.test(e.message),
    );

    const { fake: old, api: oldApi } = await startFake({ selectableFields: [] });
    try {
      await assert.rejects(oldApi.listContainers({ fieldSelector: 'spec.nodeName=n1' }), (e: KubeApiError) => e.code === 400);
    } finally {
      await old.close();
    }
  });

  it('a watch with a selector sees objects move in (ADDED) and out (DELETED) of the selection', async () => {
    fake.create(containerObj('a', { node: 'n1' }));
    const rv = fake.resourceVersion;
    const p = readWatch(fake, `resourceVersion=${rv}&fieldSelector=spec.nodeName%3Dn2`, 2);
    await waitWatchers(fake, 1);
    fake.update('default', 'a', (o) => (o.spec.nodeName = 'n2'));
    fake.update('default', 'a', (o) => (o.spec.nodeName = 'n3'));
    const events = await p;
    assert.deepEqual(
      events.map((e) => e.type),
      ['ADDED', 'DELETED'],
    );
  });

  it('patches: merge patch and json patch (Content-Type as the client sends it); 415 for strategic merge on the CR', async () => {
    fake.create(containerObj('a'));
    await api.patchContainer('default', 'a', { metadata: { labels: { a: '1' } } }, 'merge');
    await api.patchContainer('default', 'a', [{ op: 'add', path: '/metadata/annotations', value: { b: '2' } }], 'json');
    const got = fake.get('default', 'a')!;
    assert.deepEqual(got.metadata.labels, { a: '1' });
    assert.deepEqual(got.metadata.annotations, { b: '2' });
    const types = fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.contentType);
    assert.deepEqual(types, ['application/merge-patch+json', 'application/json-patch+json']);
    await assert.rejects(
      api.patchContainer('default', 'a', [{ op: 'test', path: '/metadata/labels/a', value: 'nope' }], 'json'),
      (e: KubeApiError) => e.code === 422,
    );
    const smp = await http(fake, 'PATCH', `${BASE}/namespaces/default/containers/a`, { metadata: {} }, 'application/strategic-merge-patch+json');
    assert.equal(smp.status, 415);
  });

  it('merge patch and json patch helpers follow RFC 7386 / RFC 6902', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), { a: 1, b: { d: 3, e: 4 }, f: [1] });
    assert.deepEqual(
      jsonPatch({ a: [1, 2], b: 'x' }, [
        { op: 'add', path: '/a/-', value: 3 },
        { op: 'remove', path: '/a/0' },
        { op: 'replace', path: '/b', value: 'y' },
        { op: 'copy', from: '/b', path: '/c' },
        { op: 'move', from: '/c', path: '/d' },
        { op: 'test', path: '/d', value: 'y' },
      ]),
      { a: [2, 3], b: 'y', d: 'y' },
    );
  });

  it('core/v1 Events: POST, PATCH, namespace must match involvedObject', async () => {
    fake.create(containerObj('a'));
    const ev = await api.createEvent('default', {
      metadata: { name: 'a.1', namespace: 'default' },
      involvedObject: { kind: 'Container', name: 'a', namespace: 'default' },
      reason: 'Created',
      message: 'hello',
      type: 'Normal',
      count: 1,
    });
    assert.equal(ev.metadata?.name, 'a.1');
    await api.patchEvent('default', 'a.1', { count: 2 });
    assert.equal(fake.events('default')[0]!.count, 2);
    await assert.rejects(
      api.createEvent('default', { metadata: { name: 'a.2' }, involvedObject: { kind: 'Container', name: 'a', namespace: 'other' } }),
      (e: KubeApiError) => e.code === 422,
    );
  });

  it('test controls: dropWatches, failNext, hold', async () => {
    // A long own bound: the watch must still be open when the test drops it (connecting can take seconds under load).
    const p = readWatch(fake, 'resourceVersion=0', 5, 10_000);
    await waitWatchers(fake, 1);
    assert.equal(fake.dropWatches(), 1);
    assert.deepEqual(await p, []);
    fake.failNext({ method: 'GET', path: `${BASE}/containers` }, 503);
    await assert.rejects(api.listContainers({}), (e: KubeApiError) => e.code === 503);
    await api.listContainers({});
    const h = fake.hold({ method: 'GET', path: `${BASE}/containers` });
    let done = false;
    const listing = api.listContainers({}).then(() => (done = true));
    await h.waitHeld();
    assert.equal(done, false);
    h.release();
    await listing;
    assert.equal(done, true);
  });
});

async function waitWatchers(fake: FakeApiServer, n: number): Promise<void> {
  const { waitFor } = await import('../support/wait.js');
  await waitFor(() => fake.watchCount() >= n, { timeoutMs: 10_000, what: `${n} watch connection(s)` });
}
