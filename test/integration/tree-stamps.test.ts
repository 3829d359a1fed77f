/**
 * FileSource.refresh (sources/files/tree-stamps.ts): the tree as it is now, for `acetate plan`
 * asked of the loop, without reading 2,500 manifests again when nothing changed. What a user
 * checks: every kind of change made a moment ago (no watcher has told anyone) is in the snapshot
 * after a refresh (an edit, a new file in a subdirectory, a rename, a removal, a file swapped for
 * a link out of the tree), and a tree that did not change is not read again.
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

describe('FileSource.refresh: the tree as it is now, read again only when its stamps changed', function () {
  this.timeout(30_000);

  it('sees every change made a moment ago, and reads an unchanged tree no more', async () => {
    await withTmpDir(async (outside) => {
      await writeFile(path.join(outside, 'secret.yaml'), manifest('secret'));
      await withTmpDir(async (dir) => {
        await mkdir(path.join(dir, 'sub'));
        await writeFile(path.join(dir, 'a.yaml'), manifest('a'));
        await writeFile(path.join(dir, 'sub', 'b.yaml'), manifest('b'));
        await settle();
        const src = new FileSource({ dir, watch: false, relistMs: 0 });
        let reads = 0;
        const relist = src.relist.bind(src);
        src.relist = (o) => (reads++, relist(o));
        await src.start(() => undefined);
        const names = () => [...src.snapshot().containers.keys()].sort();
        const memory = (key: string) => src.snapshot().containers.get(key)?.spec.resources.memoryBytes;
        assert.deepEqual(names(), ['default/a', 'default/b']);
        reads = 0;

        await src.refresh();
        assert.equal(reads, 0, 'an unchanged tree is not read again');

        await writeFile(path.join(dir, 'a.yaml'), manifest('a', { memory: '48Mi' })); // in place: the directory's stamp stays
        await src.refresh();
        assert.equal(memory('default/a'), 48 * 2 ** 20, 'an edit');
        await writeFile(path.join(dir, 'sub', 'c.yaml'), manifest('c'));
        await src.refresh();
        assert.deepEqual(names(), ['default/a', 'default/b', 'default/c'], 'a new file in a subdirectory');
        await rename(path.join(dir, 'sub', 'b.yaml'), path.join(dir, 'sub', 'b.yml.bak'));
        await src.refresh();
        assert.deepEqual(names(), ['default/a', 'default/c'], 'renamed away');

        await settle();
        await src.refresh(); // the files young at the last read are read once more, now settled
        reads = 0;
        await src.refresh();
        assert.equal(reads, 0, 'settled again: not read');
        await unlink(path.join(dir, 'sub', 'c.yaml'));
        await src.refresh();
        assert.deepEqual(names(), ['default/a'], 'removed');
        await unlink(path.join(dir, 'a.yaml'));
        await symlink(path.join(outside, 'secret.yaml'), path.join(dir, 'a.yaml'));
        await src.refresh();
        assert.deepEqual(names(), [], 'a file swapped for a link out of the tree');
        assert.match(
          src
            .snapshot()
            .problems.map((p) => `${p.origin}: ${p.message}`)
            .join('\n'),
          /a\.yaml: .*outside/,
        );
        await src.stop();
      });
    });
  });

  it('reads a tree with a symlink whole at each refresh: where a link leads is not in any stamp', async () => {
    await withTmpDir(async (dir) => {
      await mkdir(path.join(dir, 'inner'));
      await writeFile(path.join(dir, 'inner', 'b.yaml'), manifest('b'));
      await symlink(path.join(dir, 'inner', 'b.yaml'), path.join(dir, 'b.yaml'));
      await settle();
      const src = new FileSource({ dir, watch: false, relistMs: 0 });
      let reads = 0;
      const relist = src.relist.bind(src);
      src.relist = (o) => (reads++, relist(o));
      await src.start(() => undefined);
      reads = 0;
      await src.refresh();
      assert.equal(reads, 1);
      await src.stop();
    });
  });
});
