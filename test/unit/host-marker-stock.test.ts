/**
 * The marker tree a new container's upper dir is copied from (host-marker-stock.ts) can be removed
 * by a start beside it that built the tree of a newer view (the node made a data dir meanwhile):
 * the copy then says so instead of failing the start, and the markers are placed one by one
 * (host-view.ts). A hostile round saw `ENOENT: scandir <state>/host-view/tree-<hash>` fail a start.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { copyTree } from '../../src/runtime/walls/host-marker-stock.js';

describe('host-view marker tree: a copy from a tree removed meanwhile', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-tree-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is not an error: false (the caller places the markers itself), the upper dir left empty', async () => {
    const upper = path.join(dir, 'upper');
    await mkdir(upper);
    assert.equal(await copyTree(path.join(dir, 'host-view', 'tree-0123456789abcdef'), upper), false);
    assert.deepEqual(await readdir(upper), []);
  });

  it('a tree that is there is copied (true)', async () => {
    const tree = path.join(dir, 'tree');
    await mkdir(path.join(tree, 'var', 'lib'), { recursive: true });
    const upper = path.join(dir, 'upper');
    await mkdir(upper);
    assert.equal(await copyTree(tree, upper), true);
    assert.deepEqual(await readdir(path.join(upper, 'var')), ['lib']);
  });
});
