/**
 * Pull failures against a real registry, seen as a user sees them through the loop's status: a
 * registry answering 500, serving a corrupted blob, stopped, or asking for credentials. The
 * container waits with Ready=False (ErrImagePull, the registry's words), nothing half-pulled is
 * left or used, and running containers of the image are not touched.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest, DesiredContainer } from '../../src/api/types.js';
import { executeAction } from '../../src/apply/execute.js';
import { Controller } from '../../src/controller/loop.js';
import { pullWaiting } from '../../src/controller/image-pull.js';
import { findCondition } from '../../src/controller/status.js';
import { ImagePullError } from '../../src/images/errors.js';
import { ImageStore } from '../../src/images/store.js';
import { plan } from '../../src/plan/plan.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import type { DesiredSnapshot, DesiredSource } from '../../src/contracts/source.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { startFaultyProxy, type FaultyProxy } from '../support/faulty-proxy.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, TEST_PASSWORD, TEST_USER, writeRegistriesConf, type TestRegistry } from '../support/registry.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import type { ReconcileReport } from '../../src/controller/reconcile.js';

class StaticSource implements DesiredSource {
  readonly name = 'test';
  containers = new Map<string, DesiredContainer>();
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  synced(): boolean {
    return true;
  }
  snapshot(): DesiredSnapshot {
    return { containers: this.containers, protectedKeys: new Set(), problems: [], complete: true };
  }
  set(name: string, image: string, policy = 'IfNotPresent'): string {
    const m = {
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      metadata: { name },
      spec: { image, imagePullPolicy: policy, terminationGracePeriodSeconds: 1 },
    } as ContainerManifest;
    const d = normalizeManifest(m, { kind: 'file', file: `/m/${name}.yaml`, line: 1 });
    this.containers.set(d.key, d);
    return d.key;
  }
}

describe('image pull failures (real registry, faulty proxy, real runc)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let authReg: TestRegistry;
  let proxy: FaultyProxy;
  let work: string;
  let stateDir: string;
  let store: ImageStore;
  let runtime: RuncRuntime;
  let src: StaticSource;
  let ctl: Controller;

  before(async () => {
    reg = await startRegistry();
    authReg = await startRegistry({ auth: true });
    proxy = await startFaultyProxy(reg.port);
    work = await mkdtemp('/tmp/acetate-imgf-');
    for (const [tag, layout] of [
      ['v1', 'a'],
      ['other', 'b'],
      ['corrupt', 'c'],
      ['blob500', 'd'],
    ] as const) {
      const img = await buildImage(
        path.join(work, layout),
        testImageLayers(tag, [{ build: (d) => writeFile(path.join(d, `only-${tag}`), `${tag}\n`) }]),
        TEST_IMAGE_CONFIG,
      );
      await pushLayout(img.layout, `${reg.host}/test/app:${tag}`);
      if (tag === 'v1') await pushLayout(img.layout, `${authReg.host}/test/app:v1`, { creds: `${TEST_USER}:${TEST_PASSWORD}` });
    }
    const conf = await writeRegistriesConf(path.join(work, 'registries.conf'), [reg.host, authReg.host, proxy.host]);
    stateDir = await makeTmpStateDir('acetate-imgf-state-');
    store = new ImageStore({ stateDir, registriesConf: conf });
    // About pull failures: images run with the node's ids until their layers can be mounted idmapped.
    runtime = new RuncRuntime({ stateDir, templates: new TemplateStore({ stateDir }), images: store, isolation: { hostUsersDefault: true } });
    src = new StaticSource();
    ctl = new Controller({ runtime, sources: [src], plan, execute: executeAction, resyncMs: 0, processPollMs: 0, imageResolveCacheMs: 0 });
  });

  after(async () => {
    await cleanupStateDir(stateDir, { runtime });
    await assertNoLeaks(stateDir, { dirRemoved: true });
    await proxy.close();
    await stopRegistryAndAssertGone(reg);
    await stopRegistryAndAssertGone(authReg);
    await rm(work, { recursive: true, force: true });
  });

  async function noHalfPulls(opts: { orphansAllowed?: boolean } = {}): Promise<void> {
    assert.deepEqual(await readdir(path.join(store.dir, 'tmp')).catch(() => []), [], 'no pull dir left');
    assert.deepEqual(
      (await readdir(store.layersDir).catch(() => [] as string[])).filter((n) => n.startsWith('.')),
      [],
      'no half layer left',
    );
    if (opts.orphansAllowed) return; // an `image rm` leaves whole layers for prune
    const used = new Set((await store.list()).flatMap((r) => r.layers.map((l) => l.diffID.slice(7))));
    for (const d of await readdir(store.layersDir).catch(() => [] as string[])) assert.ok(used.has(d), `layer ${d} belongs to a complete image`);
  }

  /**
   * A reconcile that took the registry's answer: one waits at most 1 s for skopeo (RESOLVE_WAIT_MS,
   * controller/image-resolving.ts) and then goes on with the key "resolving"; the answer is the next
   * reconcile's. On a loaded machine skopeo can take longer, so the reconcile is repeated until done.
   */
  const reconciled = (key: string, done: (r: ReconcileReport) => boolean = (r) => r.waiting?.reason !== 'ImageResolving') =>
    waitFor(
      `${key} reconciled with the registry's answer`,
      async () => {
        const r = await ctl.reconcile(key);
        return done(r) ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );

  it('a registry answering 500, then stopped: the running container is untouched, a new one waits with ErrImagePull', async () => {
    const web = src.set('web', `${proxy.host}/test/app:v1`, 'Always');
    await ctl.resync(); // the loop re-reads its source
    const first = await reconciled(web);
    assert.equal(first.error, undefined, first.error?.message);
    const pid = (await runtime.get(web))!.process.pid!;
    proxy.mode = 'error500';
    const during = await reconciled(web, (r) => r.error !== undefined);
    assert.match(during.error!.message, /500/);
    assert.equal((await runtime.get(web))!.process.pid, pid, 'running container untouched');
    assert.equal(findCondition(during.status, 'Ready')!.status, 'True');
    assert.equal(findCondition(during.status, 'Synced')!.status, 'False');
    const fresh = src.set('fresh', `${proxy.host}/test/app:other`);
    await ctl.resync(); // the loop re-reads its source
    const r = await reconciled(fresh);
    const ready = findCondition(r.status, 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.equal(ready.reason, 'ErrImagePull');
    assert.match(ready.message!, /500/);
    assert.equal(r.requeue.kind, 'backoff', 'retried with back-off');
    assert.equal(await runtime.get(fresh), undefined, 'nothing created');
    await noHalfPulls();
    // Stopped registry: connection refused, in the registry's (transport's) words.
    proxy.mode = 'pass';
    await reg.kill();
    const stopped = await reconciled(fresh);
    assert.equal(findCondition(stopped.status, 'Ready')!.reason, 'ErrImagePull');
    assert.match(findCondition(stopped.status, 'Ready')!.message!, /connection refused|502|Bad Gateway/i);
    assert.equal((await runtime.get(web))!.process.pid, pid);
    await reg.restart();
    const recovered = await reconciled(fresh);
    assert.equal(recovered.error, undefined, recovered.error?.message);
    assert.equal((await runtime.get(fresh))!.process.state, 'running');
    assert.equal((await runtime.get(web))!.process.pid, pid);
    assert.equal(recovered.status!.imageID!.split('@')[0], `${proxy.host}/test/app`);
  });

  it('a corrupted blob never becomes a layer; 500 on blobs fails the create, not the node', async () => {
    const bad = src.set('bad', `${proxy.host}/test/app:corrupt`);
    await ctl.resync(); // the loop re-reads its source
    proxy.mode = 'corrupt-blobs';
    const r = await reconciled(bad);
    const ready = findCondition(r.status, 'Ready')!;
    assert.equal(ready.reason, 'ErrImagePull', JSON.stringify(r.status));
    assert.match(ready.message!, /digest|corrupt|checksum/i);
    assert.equal(await runtime.get(bad), undefined);
    await noHalfPulls();
    proxy.mode = 'error500-blobs';
    const b5 = src.set('blob500', `${proxy.host}/test/app:blob500`);
    await ctl.resync(); // the loop re-reads its source
    const r5 = await reconciled(b5);
    assert.equal(findCondition(r5.status, 'Ready')!.reason, 'ErrImagePull');
    assert.match(findCondition(r5.status, 'Ready')!.message!, /500/);
    await noHalfPulls();
    proxy.mode = 'pass';
    assert.equal((await reconciled(bad)).error, undefined);
    assert.equal((await reconciled(b5)).error, undefined);
    assert.equal((await runtime.get(bad))!.process.state, 'running');
  });

  it('a blob corrupted in the store is caught by our own check, dropped, and fetched again', async () => {
    const id = (await store.lookup(`${proxy.host}/test/app:corrupt`))!;
    const rec = (await store.get(id))!;
    const top = rec.layers[rec.layers.length - 1]!;
    const blob = store.blobPath(top.digest);
    const bytes = await readFile(blob);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(blob, bytes);
    // Forget the image and its unpacked top layer, as if this were the first pull: skopeo reuses the blob it finds.
    for (const c of await runtime.list()) await runtime.remove(c.key, { keepPrivateArea: false });
    src.containers.clear();
    await store.remove(id, { inUseBy: () => [] });
    await rm(path.join(store.layersDir, top.diffID.slice(7)), { recursive: true });
    await assert.rejects(
      store.ensure(`${proxy.host}/test/app:corrupt`, id),
      (err: Error) => err instanceof ImagePullError && /does not match its digest/.test(err.message),
    );
    await assert.rejects(readFile(blob), { code: 'ENOENT' }, 'the corrupt blob is dropped');
    await noHalfPulls({ orphansAllowed: true });
    const again = await store.ensure(`${proxy.host}/test/app:corrupt`, id);
    assert.equal(again.id, id);
  });

  it('a registry asking for credentials: ErrImagePull with its words; an auth file lets the pull through', async () => {
    const image = `${authReg.host}/test/app:v1`;
    const key = src.set('private', image);
    await ctl.resync(); // the loop re-reads its source
    const r = await reconciled(key);
    assert.equal(findCondition(r.status, 'Ready')!.reason, 'ErrImagePull');
    assert.match(findCondition(r.status, 'Ready')!.message!, /unauthorized|authentication required/i);
    assert.equal(pullWaiting(new ImagePullError('x'), 1)!.reason, 'ImagePullBackOff', 'the next attempts wait in ImagePullBackOff');
    await noHalfPulls({ orphansAllowed: true });
    const authFile = path.join(work, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [authReg.host]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64') } } }));
    const authed = new ImageStore({ stateDir, registriesConf: path.join(work, 'registries.conf'), authFile });
    const rec = await authed.pull(image);
    assert.equal(rec.layers.length, 4);
  });
});
