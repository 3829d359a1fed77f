/**
 * FileSource.readForAsker (sources/files/tree-stamps.ts): the manifests as they are now, for
 * `acetate plan` asked of the loop, without reading 2,500 manifests again when nothing changed,
 * and without touching what the loop acts on. What a user checks: every kind of change made a
 * moment ago (no watcher has told anyone) is in what the ask reads (an edit, a new file in a
 * subdirectory, a rename, a removal, a file swapped for a link out of the tree), the loop's own
 * view does not move before its watcher tells it, and a tree that did not change is not read again.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdir, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { FileSource } from '../../src/sources/files/watch.js';
import { RACY_MS } from '../../src/util/stat-cache.js';
import { withTmpDir } from '../support/tmpdir.js';
import { manifest } from '../support/manifest.js';

/** Past the age at which a stamp tells a file's content (util/stat-cache.ts). */
const settle = () => new Promise((r) => setTimeout(r, RACY_MS + 300));

describe('FileSource.readForAsker: the tree as it is now, read again only when its stamps changed, never fed to the loop', function () {
  this.timeout(30_000);

  it('sees every change made a moment ago, leaves the loop its own view, and reads an unchanged tree no more', async () => {
    await withTmpDir(async (outside) => {
      await writeFile(path.join(outside, 'secret.yaml'), manifest('secret'));
      await withTmpDir(async (dir) => {
        await mkdir(path.join(dir, 'sub'));
        await writeFile(path.join(dir, 'a.yaml'), manifest('a'));
        await writeFile(path.join(dir, 'sub', 'b.yaml'), manifest('b'));
        await settle();
        // No watcher: the source's own view moves only by a re-list, which this test never asks for.
        const src = new FileSource({ dir, watch: false, relistMs: 0 });
        const notified: unknown[] = [];
        await src.start((keys) => notified.push(keys));
        const read = async () => {
          const r = await src.readForAsker();
          assert.notEqual(r, 'has links');
          return r as Exclude<typeof r, 'has links'>;
        };
        const asked = async (): Promise<string[]> => [...(await read()).containers.keys()].sort();
        const memory = async (key: string) => (await read()).containers.get(key)?.spec.resources.memoryBytes;

        assert.deepEqual(await asked(), ['default/a', 'default/b']);
        assert.equal(src.readsForAskers, 0, 'an unchanged tree is not read again');

        await writeFile(path.join(dir, 'a.yaml'), manifest('a', { memory: '48Mi' })); // in place: the directory's stamp stays
        assert.equal(await memory('default/a'), 48 * 2 ** 20, 'an edit');
        // Settled now, and the ask's read of it is in the shared parse cache: still not the loop's table, which has not read it.
        await settle();
        assert.equal(await memory('default/a'), 48 * 2 ** 20, 'the edit, asked again once settled');
        await writeFile(path.join(dir, 'sub', 'c.yaml'), manifest('c'));
        assert.deepEqual(await asked(), ['default/a', 'default/b', 'default/c'], 'a new file in a subdirectory');
        await rename(path.join(dir, 'sub', 'b.yaml'), path.join(dir, 'sub', 'b.yml.bak'));
        assert.deepEqual(await asked(), ['default/a', 'default/c'], 'renamed away');
        await unlink(path.join(dir, 'sub', 'c.yaml'));
        assert.deepEqual(await asked(), ['default/a'], 'removed');
        await unlink(path.join(dir, 'a.yaml'));
        await symlink(path.join(outside, 'secret.yaml'), path.join(dir, 'a.yaml'));
        // A symlink in the tree: one through /proc/self leads elsewhere for each process, the asker reads it itself.
        assert.equal(await src.readForAsker(), 'has links', 'a file swapped for a link out of the tree');

        // None of it reached what the loop acts on: its watcher (and its quiet period) tells it.
        assert.deepEqual(notified, []);
        assert.deepEqual([...src.snapshot().containers.keys()].sort(), ['default/a', 'default/b']);
        assert.equal(src.snapshot().containers.get('default/a')?.spec.resources.memoryBytes, 64 * 2 ** 20);

        // Read again by the loop, and settled: the ask is answered from the loop's read again.
        await unlink(path.join(dir, 'a.yaml'));
        await writeFile(path.join(dir, 'a.yaml'), manifest('a', { memory: '40Mi' }));
        await settle();
        await src.relist();
        const reads = src.readsForAskers;
        assert.equal(await memory('default/a'), 40 * 2 ** 20);
        assert.equal(src.readsForAskers, reads, 'settled and read by the loop: not read for the ask');
        await src.stop();
      });
    });
  });

  it('does not read a tree with a symlink for an asker: where a link leads is in no stamp, and may differ per process', async () => {
    await withTmpDir(async (dir) => {
      await mkdir(path.join(dir, 'inner'));
      await writeFile(path.join(dir, 'inner', 'b.yaml'), manifest('b'));
      await symlink(path.join(dir, 'inner', 'b.yaml'), path.join(dir, 'b.yaml'));
      await settle();
      const src = new FileSource({ dir, watch: false, relistMs: 0 });
      await src.start(() => undefined);
      assert.equal(await src.readForAsker(), 'has links');
      assert.equal(src.readsForAskers, 1);
      await src.stop();
    });
  });
});
