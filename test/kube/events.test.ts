/** Kubernetes Events: posted off the loop's path, deduplicated, rate limited, failures contained. */
import assert from 'node:assert/strict';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import type { KubeApi } from '../../src/sources/kube/client.js';
import { KubeEventRecorder } from '../../src/sources/kube/events.js';
import type { KubeContainer } from '../../src/sources/kube/client.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { containerObj, fakeApiServerEachTest, NODE } from './helpers.js';

describe('kube: events', () => {
  let fake: FakeApiServer;
  let api: KubeApi;
  let obj: KubeContainer;
  let clock: FakeClock;
  let log: MemoryLogger;

  function recorder(extra: Partial<ConstructorParameters<typeof KubeEventRecorder>[0]> = {}): KubeEventRecorder {
    log = new MemoryLogger();
    return new KubeEventRecorder({ api, node: NODE, clock, logger: log, lookup: (k) => (k === 'default/web' ? obj : undefined), ...extra });
  }

  fakeApiServerEachTest((started) => ({ fake, api } = started));
  beforeEach(() => {
    obj = fake.create(containerObj('web')) as KubeContainer;
    clock = new FakeClock(Date.UTC(2024, 0, 1));
  });

  it('posts a core/v1 Event about the Container', async () => {
    const r = recorder();
    r.record('default/web', { type: 'Normal', reason: 'Created', message: 'not on this node' });
    await r.flush();
    const [ev] = fake.events('default');
    assert.ok(ev);
    assert.deepEqual(ev.involvedObject, {
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      name: 'web',
      namespace: 'default',
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
    });
    assert.equal(ev.reason, 'Created');
    assert.equal(ev.type, 'Normal');
    assert.equal(ev.message, 'not on this node');
    assert.equal(ev.count, 1);
    assert.deepEqual(ev.source, { component: 'acetate', host: NODE });
    assert.equal(ev.firstTimestamp, '2024-01-01T00:00:00.000Z');
    assert.match(ev.metadata.name, /^web\.[0-9a-f]+$/);
  });

  it('the same event again bumps count on the existing Event instead of posting a new one', async () => {
    const r = recorder();
    for (let i = 0; i < 3; i++) {
      r.record('default/web', { type: 'Warning', reason: 'BackOff', message: 'restarting in 10s' });
      clock.advance(1000);
    }
    r.record('default/web', { type: 'Warning', reason: 'Failed', message: 'start failed' });
    await r.flush();
    const evs = fake.events('default');
    assert.equal(evs.length, 2);
    const backoff = evs.find((e) => e.reason === 'BackOff')!;
    assert.equal(backoff.count, 3);
    assert.equal(backoff.lastTimestamp, '2024-01-01T00:00:02.000Z');
    assert.deepEqual(r.stats, { posted: 2, patched: 2, dropped: 0, failed: 0 });
  });

  it('rate limits a flood per object (token bucket), refilling over time', async () => {
    const r = recorder({ burst: 3, refillMs: 10_000 });
    for (let i = 0; i < 5; i++) r.record('default/web', { type: 'Normal', reason: 'Restarted', message: `restart ${i}` });
    await r.flush();
    assert.equal(fake.events('default').length, 3);
    assert.equal(r.stats.dropped, 2);
    clock.advance(10_000);
    r.record('default/web', { type: 'Normal', reason: 'Restarted', message: 'restart 5' });
    await r.flush();
    assert.equal(fake.events('default').length, 4);
  });

  it('never blocks the caller, even when the API server hangs; failures are counted, not thrown', async () => {
    const r = recorder();
    const hold = fake.hold({ method: 'POST', path: '/api/v1/namespaces/default/events' });
    r.record('default/web', { type: 'Normal', reason: 'Created', message: 'a' });
    r.record('default/web', { type: 'Normal', reason: 'Resized', message: 'b' }); // returns at once
    await hold.waitHeld(1);
    assert.equal(fake.events('default').length, 0);
    hold.release();
    await r.flush();
    assert.equal(fake.events('default').length, 2);

    fake.failNext({ method: 'POST', path: '/api/v1/namespaces/default/events' }, 403, { times: 2, message: 'events is forbidden' });
    r.record('default/web', { type: 'Normal', reason: 'Destroyed', message: 'c' });
    r.record('default/web', { type: 'Normal', reason: 'Destroyed', message: 'd' });
    await r.flush();
    assert.equal(r.stats.failed, 2);
    assert.equal(log.lines.filter((l) => l.level === 'warn').length, 1, 'a missing permission is said once');
    assert.ok(log.has('warn', /events create\/patch/));
  });

  it('ignores keys that are not Kubernetes objects of this node (file manifests)', async () => {
    const r = recorder();
    r.record('default/from-a-file', { type: 'Normal', reason: 'Created', message: 'x' });
    await r.flush();
    assert.equal(fake.events().length, 0);
  });

  it('a deduplicated Event that expired in the API server is posted again', async () => {
    const r = recorder();
    r.record('default/web', { type: 'Normal', reason: 'Resized', message: 'cpu 1 → 2' });
    await r.flush();
    fake.failNext({ method: 'PATCH', path: /\/events\// }, 404);
    r.record('default/web', { type: 'Normal', reason: 'Resized', message: 'cpu 1 → 2' });
    await r.flush();
    assert.equal(fake.events('default').length, 2);
  });
});
