/**
 * `acetate image prune|rm` beside users of the image store (real registry, real runc, the real
 * CLI for prune): the images lock (src/images/images-lock.ts) makes prune wait for a create in
 * flight and for a pull in flight instead of deleting what they are about to use, and `prune`
 * beside `acetate run` is not refused (run's node lock is not the images lock).
 *
 * The create and the pull are held mid-way deterministically, where the race is: a store whose
 * rootfs() (a create has resolved the image's layers, its record is not written) or
 * writeRecord() (a pull's layers are in place, its record is not) waits for the test.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest } from '../../src/api/types.js';
import type { ImageRecord, ImageRootfs } from '../../src/images/image-record.js';
import { ImagesLock } from '../../src/images/images-lock.js';
import { ImageStore } from '../../src/images/store.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { runCli, startCli, type StartedCli } from '../support/cli.js';
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

  function pausingRuntime(): { store: PausingStore; rt: RuncRuntime } {
    const store = new PausingStore({ stateDir, registriesConf: reg.registriesConf });
    runtime = new RuncRuntime({ stateDir, templates: new TemplateStore({ stateDir }), images: store, sweepLeftovers: true });
    return { store, rt: runtime };
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
    const d = normalizeManifest(
      {
        apiVersion: 'acetate.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'c1' },
        spec: { image: ref('v1'), terminationGracePeriodSeconds: 1 },
      } as ContainerManifest,
      { kind: 'file', file: '/m/c1.yaml', line: 1 },
    );
    const spec = { ...d.spec, image: { ref: d.spec.image!.ref, digest: rec.id } };
    const pause = (store.afterRootfs = new Pause());
    const creating = rt.create({ namespace: d.namespace, name: d.name, spec, source: d.source });
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
