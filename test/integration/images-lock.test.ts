/**
 * `acetate image prune|rm` beside users of the image store (real registry, real runc, the real
 * CLI for prune): the images lock (src/images/images-lock.ts) makes prune wait for a create in
 * flight and for a pull in flight instead of deleting what they are about to use, and `prune`
 * beside `acetate run` is not refused (run's node lock is not the images lock).
 *
 * A replace to an image no container uses holds it from its check to its create (a prune --all
 * between them would remove it after the old container is gone), and a pull in flight is shared
 * only by callers that hold the lock (one held back for the prune would hold up the others).
 *
 * The create and the pull are held mid-way deterministically, where the race is: a store whose
 * rootfs() (a create has resolved the image's layers, its record is not written) or
 * writeRecord() (a pull's layers are in place, its record is not) waits for the test, and a
 * runtime whose remove() (a replace has checked and stopped the old container) does.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest, DesiredContainer } from '../../src/api/types.js';
import { executeAction } from '../../src/apply/execute.js';
import type { ImageRecord, ImageRootfs } from '../../src/images/image-record.js';
import { ImagesLock, type ImagesLockOptions } from '../../src/images/images-lock.js';
import { ImageStore } from '../../src/images/store.js';
import type { RemoveOptions } from '../../src/runtime/runtime.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { exec } from '../../src/util/exec.js';
import { runCli, startCli, type StartedCli } from '../support/cli.js';
import { flocksOn } from '../support/flock-locks.js';
import { flatContainers } from '../support/get.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { imageManifest } from '../support/manifest.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { registryProcessesOf, startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

/** A point where an operation stops until the test lets it go on. */
class Pause {
  private reachedResolve!: () => void;
  private goResolve!: () => void;
  readonly reached = new Promise<void>((r) => (this.reachedResolve = r));
  private readonly go = new Promise<void>((r) => (this.goResolve = r));
  async here(): Promise<void> {
    this.reachedResolve();
    await this.go;
  }
  release(): void {
    this.goResolve();
  }
}

/** The real store, with the two moments of the races made to wait (once each, when armed). */
class PausingStore extends ImageStore {
  afterRootfs: Pause | undefined;
  beforeRecord: Pause | undefined;

  override async rootfs(id: string): Promise<ImageRootfs> {
    const r = await super.rootfs(id);
    const p = this.afterRootfs;
    this.afterRootfs = undefined;
    await p?.here();
    return r;
  }

  protected override async writeRecord(rec: ImageRecord): Promise<void> {
    const p = this.beforeRecord;
    this.beforeRecord = undefined;
    await p?.here();
    return super.writeRecord(rec);
  }
}

/** The real runtime, with a replace made to wait between the stop of the old container and its removal (once, when armed). */
class PausingRuntime extends RuncRuntime {
  beforeRemove: Pause | undefined;

  override async remove(key: string, opts: RemoveOptions): Promise<void> {
    const p = this.beforeRemove;
    this.beforeRemove = undefined;
    await p?.here();
    return super.remove(key, opts);
  }
}

/** A Container `name` from `image`, resolved to `digest`, as the plan hands it to a create or a replace. */
function desiredFrom(name: string, image: string, digest: string): DesiredContainer {
  const d = normalizeManifest(
    { apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name }, spec: { image, terminationGracePeriodSeconds: 1 } } as ContainerManifest,
    { kind: 'file', file: `/m/${name}.yaml`, line: 1 },
  );
  return { ...d, spec: { ...d.spec, image: { ...d.spec.image!, digest } } };
}

const WAITING = /waiting for image users/;

describe('images lock: image prune beside creates, pulls and `acetate run` (real registry, real runc)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let work: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let runtime: RuncRuntime | undefined;
  const ref = (tag: string) => `${reg.host}/test/lock:${tag}`;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-imglock-');
    for (const tag of ['v1', 'v2', 'v3']) {
      const img = await buildImage(path.join(work, tag), testImageLayers(tag), TEST_IMAGE_CONFIG);
      await pushLayout(img.layout, ref(tag));
    }
    env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
  });
  after(async () => {
    await reg.stop();
    assert.deepEqual(await registryProcessesOf(reg.dir), [], 'registry process stopped');
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(async () => {
    stateDir = await makeTmpStateDir('acetate-imglock-state-');
    runtime = undefined;
  });
  afterEach(async () => {
    await cleanupStateDir(stateDir, runtime ? { runtime } : {});
    await assertNoLeaks(stateDir, { dirRemoved: true });
  });

  function pausingRuntime(lock: ImagesLockOptions = {}): { store: PausingStore; rt: PausingRuntime } {
    const store = new PausingStore({ stateDir, registriesConf: reg.registriesConf, lock });
    const rt = new PausingRuntime({ stateDir, templates: new TemplateStore({ stateDir }), images: store, sweepLeftovers: true });
    runtime = rt;
    return { store, rt };
  }

  /** `acetate image prune [--all]`, started now; resolves once it waits for image users, or has exited. */
  async function startPrune(...flags: string[]): Promise<StartedCli> {
    const prune = startCli(['image', 'prune', ...flags], { stateDir, env });
    await waitFor('the prune to wait for image users, or to exit', () => WAITING.test(prune.stderr()) || prune.exited());
    return prune;
  }

  async function assertWhole(store: ImageStore, rec: ImageRecord): Promise<void> {
    assert.ok(await store.get(rec.id), `the record of ${rec.id} is there`);
    for (const l of rec.layers) assert.ok((await lstat(path.join(store.layersDir, l.diffID.slice(7)))).isDirectory(), `layer ${l.diffID} is there`);
    for (const d of [rec.manifestDigest, rec.configDigest, ...rec.layers.map((l) => l.digest)]) await lstat(store.blobPath(d));
    await store.rootfs(rec.id);
  }

  it('prune --all during a create from an unused image waits for it: the image and its layers stay, the container starts', async () => {
    const { store, rt } = pausingRuntime();
    const rec = await store.pull(ref('v1'));
    const d = desiredFrom('c1', ref('v1'), rec.id);
    const pause = (store.afterRootfs = new Pause());
    const creating = rt.create({ namespace: d.namespace, name: d.name, spec: d.spec, source: d.source });
    await pause.reached; // layers resolved, no record names the image yet: no container uses it
    const prune = await startPrune('--all');
    assert.equal(prune.exited(), false, `the prune did not wait for the create: ${prune.stdout()}`);
    pause.release();
    await creating;
    const r = await prune.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 0 image\(s\), 0 layer\(s\), 0 blob\(s\)/, 'the container created meanwhile uses the image');
    await assertWhole(store, rec);
    await rt.start(d.key);
    assert.equal((await rt.get(d.key))?.process.state, 'running');
  });

  it('prune during a pull, after its layers and before its record: the pull succeeds and its image is whole', async () => {
    const { store } = pausingRuntime();
    const pause = (store.beforeRecord = new Pause());
    const pulling = store.pull(ref('v3'));
    await pause.reached; // blobs and layers written, referenced by no record yet
    // Without --all: once pulled, the image is used by no container, and --all would remove it.
    const prune = await startPrune();
    assert.equal(prune.exited(), false, `the prune did not wait for the pull: ${prune.stdout()}`);
    pause.release();
    const rec = await pulling;
    const r = await prune.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 0 image\(s\), 0 layer\(s\), 0 blob\(s\)/);
    await assertWhole(store, rec);
    const list = await runCli(['image', 'list'], { stateDir, env });
    assert.match(list.stdout, /test\/lock:v3/);
  });

  it('a replace to an imported image while a prune --all waits: the image stays from the check to the create (no container names it meanwhile), the replace succeeds', async () => {
    const { store, rt } = pausingRuntime();
    const x = await store.pull(ref('v1'));
    const old = desiredFrom('c1', ref('v1'), x.id);
    await rt.create({ namespace: old.namespace, name: old.name, spec: old.spec, source: old.source });
    await rt.start(old.key);
    // Imported: nothing to pull it from again (the registry has no such tag).
    const built = await buildImage(path.join(work, 'imported'), testImageLayers('imported'), TEST_IMAGE_CONFIG);
    const tar = path.join(work, 'imported.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${built.layout}`, `oci-archive:${tar}`]);
    const y = await store.importArchive(tar, ref('imported'));
    const d = desiredFrom('c1', ref('imported'), y.id);
    const checked = (store.afterRootfs = new Pause());
    const stopped = (rt.beforeRemove = new Pause());
    const replacing = executeAction(
      { kind: 'replace', key: d.key, reason: 'image changed', desired: d, fields: ['image'], discardPrivateArea: true },
      { runtime: rt },
    );
    await checked.reached; // the check has resolved the new image's layers
    const prune = await startPrune('--all');
    assert.equal(prune.exited(), false, `the prune did not wait for the check: ${prune.stdout()}`);
    checked.release();
    await stopped.reached; // the old container is stopped, not removed: it names the old image, nothing names the new one
    // Either the prune got the lock between the check and the create (and has run), or it still waits for the replace.
    await waitFor('the prune to have run, or to wait for the replace', async () => {
      if (prune.exited()) return true;
      const l = await flocksOn(path.join(store.dir, 'acetate-images.lock'));
      return l.granted.join() === 'shared' && l.waiting.includes('exclusive');
    });
    stopped.release();
    const result = await replacing;
    assert.equal(result.outcome, 'replaced');
    const r = await prune.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 1 image\(s\)/, 'v1, which no container uses once c1 is replaced; not the new image');
    await assertWhole(store, y);
    const c1 = await rt.get(d.key);
    assert.equal(c1?.applied.spec.image?.digest, y.id);
    assert.equal(c1?.process.state, 'running');
  });

  it('a pull in flight is shared only by callers holding the lock: a caller held back for a waiting prune does not hold up a create pulling the same image', async () => {
    let heldBack = 0;
    const { store } = pausingRuntime({ onSharedWait: () => heldBack++ });
    const id = await store.skopeo.resolveDigest(ref('v2'));
    // A create from an image not on the node yet, holding the lock until the test lets it pull.
    const go = new Pause();
    const creating = store.lock.shared(async () => {
      await go.here();
      return store.ensure(ref('v2'), id);
    });
    await go.reached;
    const prune = await startPrune();
    assert.equal(prune.exited(), false, `the prune did not wait for the create: ${prune.stdout()}`);
    const other = store.ensure(ref('v2'), id); // a caller with no hold: held back for the prune
    await waitFor('the caller with no hold to be held back for the prune', () => heldBack > 0);
    go.release();
    const rec = await creating; // had it awaited the pull of the caller held back: until the prune gives up (60 s)
    const r = await prune.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 0 image\(s\), 0 layer\(s\), 0 blob\(s\)/);
    assert.equal((await other).id, rec.id);
    await assertWhole(store, rec);
  });

  it('`acetate image prune` beside `acetate run` is not refused: it waits for the creates in flight, not for run, then removes what no container uses', async () => {
    const dir = path.join(work, 'manifests');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'c1.yaml'), imageManifest('c1', ref('v1')));
    const run = startCli(['run', '-f', dir, '--log-format', 'json'], { stateDir, env, timeoutMs: 170_000 });
    try {
      await waitFor(
        async () => flatContainers((await runCli(['get', '-o', 'json'], { stateDir })).stdout).some((c) => c.name === 'c1' && c.phase === 'Running'),
        { timeoutMs: 60_000, message: () => `c1 Running under acetate run (stderr: ${run.stderr()})` },
      );
      // Beside run (which holds the node lock for as long as it lives): a pull, then the prune.
      const pulled = await runCli(['image', 'pull', ref('v2')], { stateDir, env });
      assert.equal(pulled.code, 0, pulled.stderr);
      // A create of run in flight, as its create holds the images lock (another process: another open file).
      const release = new Pause();
      const creating = new ImagesLock(path.join(stateDir, 'images')).shared(() => release.here());
      await release.reached;
      const prune = await startPrune('--all');
      assert.equal(prune.exited(), false, `the prune did not wait for the create in flight: ${prune.stdout()}${prune.stderr()}`);
      release.release();
      await creating;
      const r = await prune.done;
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /in use by|acetate\.lock/, 'not refused for the node lock');
      assert.match(r.stdout, /removed 1 image\(s\), 1 layer\(s\)/, 'v2 (its own last layer) removed, v1 kept for c1');
      const list = await runCli(['image', 'list'], { stateDir, env });
      assert.match(list.stdout, /test\/lock:v1/);
      assert.doesNotMatch(list.stdout, /test\/lock:v2/);
      const rmUsed = await runCli(['image', 'rm', ref('v1')], { stateDir, env });
      assert.equal(rmUsed.code, 1);
      assert.match(rmUsed.stderr, /in use by default\/c1/);
      assert.equal(run.exited(), false, `acetate run exited: ${run.stderr()}`);
      const c1 = flatContainers((await runCli(['get', '-o', 'json'], { stateDir })).stdout).find((c) => c.name === 'c1');
      assert.equal(c1?.phase, 'Running');
      assert.equal(c1?.restarts, 0);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
  });
});
