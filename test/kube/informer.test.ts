/**
 * The informer against the fake API server through the real client: list then watch with
 * bookmarks, resume after a dropped watch, re-list after 410 (and nothing complete meanwhile),
 * field → label selector fallback, backoff on an injectable clock.
 */
import assert from 'node:assert/strict';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import type { KubeApi } from '../../src/sources/kube/client.js';
import { ContainerInformer } from '../../src/sources/kube/informer.js';
import type { InformerEvent, InformerOptions } from '../../src/sources/kube/informer-types.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { waitFor } from '../support/wait.js';
import { containerObj, fakeApiServerEachTest, NODE } from './helpers.js';

const LIST = '/apis/acetate.dev/v1alpha1/containers';

describe('kube: informer', () => {
  let fake: FakeApiServer;
  let api: KubeApi;
  const { stopAfterTest, restartFake } = fakeApiServerEachTest((started) => ({ fake, api } = started));
  let events: InformerEvent[];
  let log: MemoryLogger;

  function make(opts: Partial<InformerOptions> = {}): ContainerInformer {
    log = new MemoryLogger();
    events = [];
    const informer = stopAfterTest(new ContainerInformer({ api, node: NODE, logger: log, backoff: { baseMs: 20, maxMs: 100 }, random: () => 1, ...opts }));
    informer.on((e) => events.push(e));
    return informer;
  }

  const lists = () => fake.requests.filter((r) => r.path === LIST && r.query.get('watch') !== 'true');
  const watches = () => fake.requests.filter((r) => r.path === LIST && r.query.get('watch') === 'true');

  it('lists, then watches from the list resourceVersion with bookmarks and the node field selector', async () => {
    fake.create(containerObj('a'));
    fake.create(containerObj('other', { node: 'node-b' }));
    const inf = make();
    assert.equal(inf.complete(), false);
    assert.equal(inf.synced(), false);
    inf.start();
    await inf.waitForSync();
    assert.equal(inf.complete(), true);
    assert.deepEqual(inf.keys(), ['default/a']);
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    const [l] = lists();
    assert.equal(l!.query.get('fieldSelector'), `spec.nodeName=${NODE}`);
    assert.equal(l!.query.get('resourceVersion'), null, 'the list is a fresh (quorum) read');
    const [w] = watches();
    assert.equal(w!.query.get('resourceVersion'), inf.resourceVersion());
    assert.equal(w!.query.get('allowWatchBookmarks'), 'true');
    assert.equal(w!.query.get('fieldSelector'), `spec.nodeName=${NODE}`);
    assert.ok(Number(w!.query.get('timeoutSeconds')) >= 300);
    assert.equal(inf.selectorInUse(), 'field');
    assert.ok(log.has('info', /field selector spec.nodeName=node-a/));

    fake.create(containerObj('b'));
    fake.update('default', 'a', (o) => (o.spec.command = ['/bin/true']));
    fake.remove('default', 'b');
    await waitFor(() => events.filter((e) => e.kind === 'delete').length === 1, { what: 'the delete event' });
    assert.deepEqual(
      events.filter((e) => e.kind === 'upsert' || e.kind === 'delete').map((e) => `${e.kind} ${(e as { key: string }).key}`),
      ['upsert default/b', 'upsert default/a', 'delete default/b'],
    );
    assert.deepEqual(inf.get('default/a')!.spec, { ...(fake.get('default', 'a')!.spec as object) });
    assert.equal(inf.get('default/b'), undefined);
    assert.equal(lists().length, 1, 'no re-list');
  });

  it('a BOOKMARK advances the resourceVersion the next watch resumes from', async () => {
    fake.create(containerObj('a'));
    const inf = make();
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    fake.create(containerObj('elsewhere', { node: 'node-b' })); // not ours: no event, but the rv moves
    fake.bookmark();
    await waitFor(() => inf.stats.bookmarks === 1, { what: 'the bookmark' });
    assert.equal(inf.resourceVersion(), fake.resourceVersion);
    fake.dropWatches();
    await waitFor(() => watches().length === 2 && fake.watchCount() === 1, { what: 'the watch to resume' });
    assert.equal(watches()[1]!.query.get('resourceVersion'), fake.resourceVersion);
    assert.equal(lists().length, 1);
  });

  it('a dropped watch resumes from the last resourceVersion: nothing re-listed, changes in the gap delivered, complete throughout', async () => {
    fake.create(containerObj('a'));
    const inf = make();
    const completeness: boolean[] = [];
    inf.on((e) => e.kind === 'complete' && completeness.push(e.complete));
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    const rv = inf.resourceVersion();
    fake.dropWatches({ abrupt: true });
    fake.create(containerObj('b'));
    fake.remove('default', 'a');
    await waitFor(() => inf.get('default/b') && !inf.get('default/a'), { what: 'the gap to be replayed' });
    const resumed = watches()[1]!;
    assert.equal(resumed.query.get('resourceVersion'), rv);
    assert.equal(lists().length, 1, 'no re-list after a dropped watch');
    assert.deepEqual(completeness, [true], 'never incomplete');
    assert.ok(log.has('warn', /watch of Containers failed/), 'the failure is logged');
  });

  it('410 as an ERROR event: incomplete until the re-list completes, then complete with the fresh list', async () => {
    fake.create(containerObj('a'));
    fake.create(containerObj('b'));
    const inf = make();
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    // the history is lost while acetate is not watching
    fake.dropWatches();
    const hold = fake.hold({ method: 'GET', path: LIST }); // stalls the resumed watch and then the list
    await hold.waitHeld(1);
    fake.remove('default', 'a');
    fake.create(containerObj('c'));
    fake.compact();
    hold.release();
    const relist = fake.hold({ method: 'GET', path: /containers$/ });
    await waitFor(() => inf.stats.gone === 1, { what: 'the 410' });
    await relist.waitHeld(1);
    assert.equal(inf.complete(), false, 'incomplete while re-listing');
    assert.ok(inf.get('default/a'), 'the stale view is kept (nothing is destroyed from it)');
    relist.release();
    await waitFor(() => inf.complete(), { what: 'the re-list' });
    assert.deepEqual(inf.keys().sort(), ['default/b', 'default/c']);
    const relisted = events.filter((e) => e.kind === 'relisted');
    assert.equal(relisted.length, 2);
    assert.deepEqual((relisted[1] as { keys: string[] }).keys.sort(), ['default/a', 'default/b', 'default/c']);
    assert.deepEqual(
      events.filter((e) => e.kind === 'complete').map((e) => (e as { complete: boolean }).complete),
      [true, false, true],
    );
    assert.ok(log.has('info', /expired \(410/));
  });

  it('410 as HTTP status on the watch: re-list too', async () => {
    await restartFake({ goneAsHttpStatus: true });
    fake.create(containerObj('a'));
    const inf = make();
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    fake.dropWatches();
    const hold = fake.hold({ method: 'GET', path: LIST });
    await hold.waitHeld(1);
    fake.create(containerObj('b'));
    fake.compact();
    hold.release();
    await waitFor(() => inf.stats.gone === 1 && inf.complete() && inf.get('default/b'), { what: 'the re-list after HTTP 410' });
    assert.equal(lists().length, 2);
  });

  it('an ERROR event other than 410 resumes the watch after a backoff, without re-listing', async () => {
    fake.create(containerObj('a'));
    const inf = make();
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    fake.sendWatchError(500, 'InternalError', 'etcd hiccup');
    await waitFor(() => inf.stats.watchFailures === 1 && fake.watchCount() === 1 && watches().length === 2, { what: 'the resumed watch' });
    assert.equal(lists().length, 1);
    assert.equal(inf.complete(), true);
    assert.equal(inf.lastError()?.code, 500);
  });

  it('falls back to the label selector when the field selector is not supported (Kubernetes < 1.31), and says so', async () => {
    await restartFake({ selectableFields: [] });
    fake.create(containerObj('labelled', { labels: { 'acetate.dev/node': NODE } }));
    fake.create(containerObj('unlabelled'));
    const inf = make();
    inf.start();
    await inf.waitForSync();
    assert.equal(inf.selectorInUse(), 'label');
    assert.deepEqual(inf.keys(), ['default/labelled']);
    assert.ok(log.has('warn', /does not support the field selector spec.nodeName.*Falling back to label selector acetate.dev\/node=node-a/s));
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    assert.equal(watches()[0]!.query.get('labelSelector'), `acetate.dev/node=${NODE}`);
    assert.equal(watches()[0]!.query.get('fieldSelector'), null);
  });

  it('a failing list is retried with backoff on the injected clock; nothing is synced or complete before it succeeds', async () => {
    const clock = new FakeClock();
    fake.failNext({ method: 'GET', path: LIST }, 503, { times: 2, message: 'apiserver starting' });
    fake.create(containerObj('a'));
    const inf = make({ clock, backoff: { baseMs: 1000, maxMs: 8000 }, resyncIntervalMs: 0 });
    inf.start();
    await waitFor(() => inf.stats.listFailures === 1 && clock.pending() > 0, { what: 'the first failure' });
    assert.equal(lists().length, 1);
    assert.equal(inf.synced(), false);
    assert.equal(inf.complete(), false);
    assert.ok(log.has('warn', /cannot list Containers.*apiserver starting.*retrying in 1000 ms/));
    clock.advance(999);
    assert.equal(lists().length, 1, 'not before the backoff');
    clock.advance(1);
    await waitFor(() => inf.stats.listFailures === 2 && clock.pending() > 0, { what: 'the second failure' });
    assert.ok(log.has('warn', /retrying in 2000 ms/), 'the backoff doubles');
    clock.advance(2000);
    await inf.waitForSync();
    assert.equal(inf.complete(), true);
    assert.equal(inf.lastError(), undefined);
  });

  it('periodic resync replays the cache; relistIntervalMs re-lists while staying complete', async () => {
    const clock = new FakeClock();
    fake.create(containerObj('a'));
    const inf = make({ clock, resyncIntervalMs: 60_000, relistIntervalMs: 600_000 });
    inf.start();
    await inf.waitForSync();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    clock.advance(60_000);
    assert.equal(events.filter((e) => e.kind === 'resync').length, 1);
    clock.advance(540_000);
    await waitFor(() => lists().length === 2 && fake.watchCount() === 1 && watches().length === 2, { what: 'the periodic re-list' });
    assert.deepEqual(
      events.filter((e) => e.kind === 'complete').map((e) => (e as { complete: boolean }).complete),
      [true],
    );
  });

  it('a watch silent for longer than its idle timeout is abandoned and resumed', async () => {
    const clock = new FakeClock();
    fake.create(containerObj('a'));
    const inf = make({ clock, idleTimeoutMs: 30_000, resyncIntervalMs: 0 });
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    clock.advance(30_000);
    await waitFor(() => inf.stats.watchFailures === 1 && fake.watchCount() === 0, { what: 'the silent watch to be abandoned' });
    clock.advance(20); // the reconnect backoff
    await waitFor(() => watches().length === 2 && fake.watchCount() === 1, { what: 'a new watch' });
    assert.ok(log.has('warn', /no event or bookmark for 30000 ms/));
    assert.equal(lists().length, 1);
  });

  it('stop() ends the watch and the loop', async () => {
    const inf = make();
    inf.start();
    await waitFor(() => fake.watchCount() === 1, { what: 'a watch' });
    await inf.stop();
    await waitFor(() => fake.watchCount() === 0, { what: 'the watch to close' });
    const before = fake.requests.length;
    fake.create(containerObj('late'));
    assert.equal(inf.get('default/late'), undefined);
    assert.equal(fake.requests.length, before);
  });
});
