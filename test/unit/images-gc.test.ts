/**
 * `image prune` beside a pull of an acetate from before the images lock (a rolling upgrade): such
 * a pull does not take the lock, so the prune also keeps unreferenced layers and blobs while a live
 * process has a pull's temp dir (real store, real flock; the pull is its temp dir, kept by this
 * live process).
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageStore } from '../../src/images/store.js';
import { withTmpDir } from '../support/tmpdir.js';

describe('image prune beside a pull that does not take the images lock', () => {
  it('keeps layers and blobs no record names while a live process has a pull temp dir, saying so; removes them once it is gone', () =>
    withTmpDir(async (stateDir) => {
      const store = new ImageStore({ stateDir });
      const hex = 'c'.repeat(64);
      const layer = path.join(store.layersDir, hex);
      const blob = store.blobPath(`sha256:${hex}`);
      await mkdir(layer, { recursive: true });
      await mkdir(path.dirname(blob), { recursive: true });
      await writeFile(blob, 'a layer being pulled');
      const pulling = path.join(store.tmpDir, `pull-${process.pid}-0a0b0c0d`);
      await mkdir(pulling, { recursive: true });

      const kept = await store.prune();
      assert.deepEqual([kept.layers, kept.blobs], [0, 0]);
      assert.match(kept.skipped ?? '', /a pull is in progress \(pull-\d+-0a0b0c0d\); layers and blobs kept/);
      await lstat(layer);
      await lstat(blob);

      await rm(pulling, { recursive: true });
      const pruned = await store.prune();
      assert.deepEqual([pruned.layers, pruned.blobs, pruned.skipped], [1, 1, undefined]);
      await assert.rejects(lstat(layer), { code: 'ENOENT' });
      await assert.rejects(lstat(blob), { code: 'ENOENT' });
    }));
});
