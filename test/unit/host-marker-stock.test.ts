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
import { copyTree, sweepDeadCopies } from '../../src/runtime/walls/host-marker-stock.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

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

describe('host-view marker stock: what a process that died left', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-stock-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("a dead process's unfinished copies, claims and trees are removed; a live one's, ready copies and other names stay", async () => {
    const stock = path.join(dir, 'tree-1.stock');
    const dead = await deadPid();
    const live = process.ppid; // alive for the whole test
    const names = {
      stock: [`.${dead}-0a1b2c3d-0`, `.${dead}-0a1b2c3d-1`, `.${live}-0a1b2c3d-0`, `${dead}-0a1b2c3d-2`, '.other'],
      trees: [`.claim-${dead}-0a1b2c3d`, `.tmp-${dead}-0a1b2c3d`, `.claim-${live}-0a1b2c3d`, `.tmp-${live}-0a1b2c3d`, 'tree-1'],
    };
    for (const n of names.stock) await mkdir(path.join(stock, n, 'etc'), { recursive: true });
    for (const n of names.trees) await mkdir(path.join(dir, n), { recursive: true });
    await sweepDeadCopies(stock, dir);
    assert.deepEqual((await readdir(stock)).sort(), [`.${live}-0a1b2c3d-0`, `${dead}-0a1b2c3d-2`, '.other'].sort());
    assert.deepEqual((await readdir(dir)).sort(), [`.claim-${live}-0a1b2c3d`, `.tmp-${live}-0a1b2c3d`, 'tree-1', 'tree-1.stock'].sort());
  });
});

/** A pid that was a process and is no more (a child that exited and was reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid!;
}
