/**
 * What one layer may take while it is unpacked (real registry, real tar): a small blob that expands
 * past ACETATE_MAX_LAYER_SIZE is refused as soon as it passes the bound; on a small state dir the
 * unpack stops at the node's free-space floor, and at a full disk the reason is in words (free
 * space, what the layer needs), not only tar's; a whiteout that is a directory is refused naming
 * it. In every case nothing of the layer is kept (no half-unpacked dir, no layer, no image).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageStore } from '../../src/images/store.js';
import { exec } from '../../src/util/exec.js';
import { buildImage, pushLayout, tarOf, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';

const MI = 2 ** 20;

describe('layer unpack bounds (real registry, real tar, a small tmpfs state dir)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let work: string;
  let mnt: string;
  let bombDiffID: string;
  let bombBlobBytes: number;
  const saved = { max: process.env.ACETATE_MAX_LAYER_SIZE, floor: process.env.ACETATE_MIN_FREE };

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-unpack-');
    // 301 MB of zeros in one file: a gzip blob of well under 1.5 MB.
    const stage = path.join(work, 'bomb-stage');
    await mkdir(stage);
    await exec('truncate', ['-s', '301000000', path.join(stage, 'zeros')]);
    const layers = testImageLayers('bomb');
    const img = await buildImage(path.join(work, 'bomb'), [layers[0]!, { build: async () => undefined, tar: await tarOf(stage) }], TEST_IMAGE_CONFIG);
    await rm(stage, { recursive: true, force: true });
    bombDiffID = img.diffIDs[1]!;
    bombBlobBytes = Number((await exec('stat', ['-c', '%s', path.join(img.layout, 'blobs', 'sha256', img.layerDigests[1]!.slice(7))])).stdout.trim());
    assert.ok(bombBlobBytes < 1.5 * MI, `the blob is small: ${bombBlobBytes}`);
    await pushLayout(img.layout, `${reg.host}/test/bomb:1`);
    // A layer whose "whiteout" is a directory.
    const wl = testImageLayers('wh');
    const wimg = await buildImage(
      path.join(work, 'wh'),
      [
        wl[0]!,
        { build: (d) => mkdir(path.join(d, 'etc', '.wh.doomed'), { recursive: true }).then(() => writeFile(path.join(d, 'etc', '.wh.doomed', 'x'), 'x\n')) },
      ],
      TEST_IMAGE_CONFIG,
    );
    await pushLayout(wimg.layout, `${reg.host}/test/whdir:1`);
  });

  beforeEach(async () => {
    mnt = await mkdtemp('/tmp/acetate-unpack-fs-');
    await exec('mount', ['-t', 'tmpfs', '-o', 'size=200M', 'tmpfs', mnt]);
  });

  afterEach(async () => {
    await exec('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
    for (const [k, v] of [
      ['ACETATE_MAX_LAYER_SIZE', saved.max],
      ['ACETATE_MIN_FREE', saved.floor],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  after(async () => {
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  function newStore(): ImageStore {
    return new ImageStore({ stateDir: path.join(mnt, 'state'), registriesConf: reg.registriesConf });
  }

  async function assertNothingKept(store: ImageStore, ref: string): Promise<void> {
    assert.deepEqual(
      (await readdir(store.layersDir)).filter((n) => n.startsWith('.')),
      [],
      'no half-unpacked dir left',
    );
    assert.ok(!(await readdir(store.layersDir)).includes(bombDiffID.slice(7)), 'no layer dir for the refused layer');
    assert.equal(await store.lookup(ref), undefined, 'no image recorded');
    const s = await statfs(mnt);
    assert.ok((s.blocks - s.bfree) * s.bsize < 20 * MI, `the state dir holds only small things: ${((s.blocks - s.bfree) * s.bsize) / MI} MiB used`);
  }

  it('a 301 MB layer from a small blob is refused past ACETATE_MAX_LAYER_SIZE, with the reason', async () => {
    process.env.ACETATE_MAX_LAYER_SIZE = '100Mi';
    process.env.ACETATE_MIN_FREE = '0';
    const store = newStore();
    const ref = `${reg.host}/test/bomb:1`;
    await assert.rejects(store.pull(ref), (err: Error) => {
      assert.equal(err.name, 'ImagePullError');
      assert.match(
        err.message,
        new RegExp(`layer ${bombDiffID} unpacks to more than 100Mi \\(ACETATE_MAX_LAYER_SIZE, the bound on one layer\\); refused, nothing of it kept`),
      );
      return true;
    });
    await assertNothingKept(store, ref);
  });

  it('on a 200M state dir the unpack stops at the free-space floor (ACETATE_MIN_FREE), before the disk is full', async () => {
    process.env.ACETATE_MIN_FREE = '64Mi';
    const store = newStore();
    const ref = `${reg.host}/test/bomb:1`;
    await assert.rejects(store.pull(ref), (err: Error) => {
      assert.match(
        err.message,
        /unpacking stopped after [\d.]+Mi: the state dir has [\d.]+Mi free, less than the 64Mi kept free on the node \(ACETATE_MIN_FREE\)/,
      );
      return true;
    });
    await assertNothingKept(store, ref);
  });

  it('a full state dir during unpack says so in words: free space and what the layer needs', async () => {
    process.env.ACETATE_MIN_FREE = '0';
    const store = newStore();
    const ref = `${reg.host}/test/bomb:1`;
    await assert.rejects(store.pull(ref), (err: Error) => {
      // The layer's stream is 301 MB of file plus tar's headers and padding: 287.1Mi.
      assert.match(err.message, /no space left on the state dir \([\d.]+Mi free when the unpack began, the layer needs 287\.\dMi\); nothing of it kept/);
      assert.match(err.message, /\(tar: .*(No space left on device|Wrote only)/);
      return true;
    });
    await assertNothingKept(store, ref);
  });

  it('a whiteout that is a directory is refused, naming it', async () => {
    process.env.ACETATE_MIN_FREE = '0';
    const store = newStore();
    const ref = `${reg.host}/test/whdir:1`;
    await assert.rejects(
      store.pull(ref),
      /layer sha256:[0-9a-f]{64}: the whiteout etc\/\.wh\.doomed is a directory \(a whiteout is an empty file\); the layer is refused/,
    );
    assert.deepEqual(
      (await readdir(store.layersDir)).filter((n) => n.startsWith('.')),
      [],
    );
    assert.equal(await store.lookup(ref), undefined);
  });
});
