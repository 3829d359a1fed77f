/** FileSource on real files with real inotify watches: what a user's editor, git and shell do. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { FileSource } from '../../src/sources/files/watch.js';
import { loadManifestDir, ManifestCache } from '../../src/sources/files/load.js';
import { loadManifestCacheFile, manifestFingerprint } from '../../src/sources/files/manifest-cache-file.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { withTmpDir } from '../support/tmpdir.js';
import { waitFor } from '../support/wait.js';

const manifest = (name: string, memory = '64Mi') => `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: host
  command: ["/bin/sleep", "1000"]
  resources:
    memory: ${memory}
`;

type Change = string[] | 'all';

async function withSource(
  files: Record<string, string>,
  fn: (ctx: { dir: string; src: FileSource; changes: Change[] }) => Promise<void>,
  opts: { debounceMs?: number; allowEmpty?: boolean; clock?: FakeClock } = {},
): Promise<void> {
  await withTmpDir(async (dir) => {
    for (const [rel, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), text);
    }
    const src = new FileSource({
      dir,
      debounceMs: opts.debounceMs ?? 100,
      relistMs: 0,
      allowEmpty: opts.allowEmpty,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    const changes: Change[] = [];
    await src.start((keys) => changes.push(keys));
    try {
      await fn({ dir, src, changes });
    } finally {
      await src.stop();
    }
  });
}

/** Writes a sentinel file and waits for its change: every earlier event has been delivered by then. */
async function barrier(dir: string, changes: Change[], n: number): Promise<void> {
  await writeFile(path.join(dir, `zz-sentinel-${n}.yaml`), manifest(`sentinel-${n}`));
  await waitFor(() => changes.some((c) => c !== 'all' && c.includes(`default/sentinel-${n}`)), { message: `sentinel ${n}` });
}

/** Saves a known manifest atomically and waits for its change: read at once, every earlier event seen. */
async function barrierAtomic(dir: string, changes: Change[], name: string, memory = '96Mi'): Promise<void> {
  const n = changes.length;
  const tmp = path.join(dir, `.${name}.yaml.tmp`);
  await writeFile(tmp, manifest(name, memory));
  await rename(tmp, path.join(dir, `${name}.yaml`));
  await waitFor(() => changes.slice(n).some((c) => c !== 'all' && c.includes(`default/${name}`)), { message: `atomic save of ${name}` });
}

describe('FileSource (real files, inotify)', function () {
  this.timeout(30_000);

  it('reads the tree at start: synced, complete, containers by key', async () => {
    await withSource({ 'web.yaml': manifest('web'), 'sub/db.yml': manifest('db') }, async ({ src, changes }) => {
      assert.ok(src.synced());
      const s = src.snapshot();
      assert.deepEqual([...s.containers.keys()].sort(), ['default/db', 'default/web']);
      assert.equal(s.complete, true);
      assert.deepEqual(changes, [], 'the initial read is not a change');
    });
  });

  it('an atomic save (write a temporary file, rename it over the manifest) is one change', async () => {
    await withSource({ 'web.yaml': manifest('web'), 'other.yaml': manifest('other') }, async ({ dir, src, changes }) => {
      const tmp = path.join(dir, '.web.yaml.tmp-1234');
      await writeFile(tmp, manifest('web', '128Mi'));
      await rename(tmp, path.join(dir, 'web.yaml'));
      await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 128 * 2 ** 20, { message: 'new memory' });
      await barrier(dir, changes, 1);
      assert.equal(changes.length, 2, `changes: ${JSON.stringify(changes)}`);
      assert.deepEqual(changes[0], ['default/web']);
    });
  });

  // The debounce runs on a clock that never moves here: whatever arrives came without it.
  it('an atomic save of a known manifest is read at once, without waiting for the debounce', async () => {
    const clock = new FakeClock();
    await withSource(
      { 'web.yaml': manifest('web'), 'other.yaml': manifest('other') },
      async ({ dir, src, changes }) => {
        const tmp = path.join(dir, '.web.yaml.tmp-1');
        await writeFile(tmp, manifest('web', '128Mi'));
        await rename(tmp, path.join(dir, 'web.yaml'));
        await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 128 * 2 ** 20, {
          message: 'new memory, debounce not run',
        });
        assert.deepEqual(changes, [['default/web']]);
        assert.ok(clock.pending() > 0, 'the debounced read (the watch saw the change too) is still waiting on the clock');
        clock.advance(100);
        await barrierAtomic(dir, changes, 'other');
        assert.deepEqual(changes, [['default/web'], ['default/other']], 'the debounced re-read found nothing new');
      },
      { clock },
    );
  });

  /**
   * After `before`, web.yaml is written half (valid YAML, but not the manifest meant), then whole:
   * nothing is read before the debounce (on a clock that moves only when told), the whole file after it.
   */
  async function halfWrittenWaits(files: Record<string, string>, before: (dir: string) => Promise<void>): Promise<void> {
    const clock = new FakeClock();
    await withSource(
      { 'web.yaml': manifest('web'), 'other.yaml': manifest('other'), ...files },
      async ({ dir, src, changes }) => {
        const file = path.join(dir, 'web.yaml');
        const full = manifest('web', '128Mi');
        await before(dir);
        await writeFile(file, full.slice(0, full.indexOf('resources:')));
        // Events are delivered in order: once a later atomic save is in, the write was seen.
        await barrierAtomic(dir, changes, 'other');
        assert.equal(src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes, 64 * 2 ** 20, 'still the old manifest');
        assert.deepEqual(src.snapshot().problems, []);
        assert.deepEqual(changes, [['default/other']]);
        await writeFile(file, full);
        await barrierAtomic(dir, changes, 'other', '80Mi');
        clock.advance(100);
        await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 128 * 2 ** 20, {
          message: 'the whole manifest, after the debounce',
        });
      },
      { clock },
    );
  }

  it('a write in place waits out the debounce: a half-written manifest is not read', async () => {
    await halfWrittenWaits({}, async () => undefined); // in place: the same inode
  });

  it('a manifest made again (not moved) right after another name went waits out the debounce: `rm a.yaml b.txt; render > a.yaml`', async () => {
    // fs.watch says 'rename' for this creation as for a move into place.
    await halfWrittenWaits({ 'notes.txt': 'x\n' }, async (dir) => {
      await unlink(path.join(dir, 'web.yaml'));
      await unlink(path.join(dir, 'notes.txt'));
    });
  });

  it('a vim-style save (rename the original away, write a new file) is one change', async () => {
    await withSource({ 'web.yaml': manifest('web'), 'other.yaml': manifest('other') }, async ({ dir, src, changes }) => {
      await rename(path.join(dir, 'web.yaml'), path.join(dir, 'web.yaml~'));
      await writeFile(path.join(dir, 'web.yaml'), manifest('web', '96Mi'));
      await unlink(path.join(dir, 'web.yaml~'));
      await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 96 * 2 ** 20, { message: 'new memory' });
      await barrier(dir, changes, 1);
      assert.equal(changes.length, 2, `changes: ${JSON.stringify(changes)}`);
      assert.ok(src.snapshot().containers.has('default/web'));
    });
  });

  it('ignores dotfiles, .git, editor temporary/backup files and other extensions', async () => {
    await withSource({ 'web.yaml': manifest('web') }, async ({ dir, src, changes }) => {
      await mkdir(path.join(dir, '.git'), { recursive: true });
      await writeFile(path.join(dir, '.git', 'x.yaml'), manifest('git'));
      await writeFile(path.join(dir, '.hidden.yaml'), manifest('hidden'));
      await writeFile(path.join(dir, 'web.yaml~'), manifest('tilde'));
      await writeFile(path.join(dir, '.web.yaml.swp'), 'binary junk');
      await writeFile(path.join(dir, 'web.yaml.bak'), manifest('bak'));
      await writeFile(path.join(dir, '#web.yaml#'), manifest('emacs'));
      await writeFile(path.join(dir, 'notes.txt'), 'hello');
      await barrier(dir, changes, 1);
      assert.equal(changes.length, 1, `changes: ${JSON.stringify(changes)}`);
      assert.deepEqual([...src.snapshot().containers.keys()].sort(), ['default/sentinel-1', 'default/web']);
      assert.deepEqual(src.snapshot().problems, []);
    });
  });

  it('debounces: files written together are read once, in one change', async () => {
    await withSource(
      { 'web.yaml': manifest('web') },
      async ({ dir, src, changes }) => {
        await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => writeFile(path.join(dir, `${n}.yaml`), manifest(n))));
        await waitFor(() => src.snapshot().containers.size === 6, { message: 'five new containers' });
        await barrier(dir, changes, 1);
        assert.equal(changes.length, 2, `changes: ${JSON.stringify(changes)}`);
        assert.deepEqual(changes[0], ['default/a', 'default/b', 'default/c', 'default/d', 'default/e']);
      },
      { debounceMs: 300 },
    );
  });

  it('directories made after the start are watched (an edit deep inside is seen); one moved in or removed re-reads the tree', async () => {
    await withSource({ 'web.yaml': manifest('web') }, async ({ dir, src }) => {
      const has = (key: string, memory?: number) => {
        const c = src.snapshot().containers.get(key);
        return memory === undefined ? c !== undefined : c?.spec.resources.memoryBytes === memory;
      };
      // mkdir -p then a file: the new directories are watched, so a later edit in them is an event.
      await mkdir(path.join(dir, 'team/a/b'), { recursive: true });
      await writeFile(path.join(dir, 'team/a/b/api.yaml'), manifest('api'));
      await waitFor(() => has('default/api'), { message: 'api in a new nested dir' });
      await writeFile(path.join(dir, 'team/a/b/api.yaml'), manifest('api', '96Mi'));
      await waitFor(() => has('default/api', 96 * 2 ** 20), { message: 'an edit in the new nested dir' });
      // A directory made elsewhere and moved into the tree, with its files already in it.
      const outside = `${dir}-outside`;
      await mkdir(path.join(outside, 'batch'), { recursive: true });
      try {
        await writeFile(path.join(outside, 'batch/job.yaml'), manifest('job'));
        await rename(path.join(outside, 'batch'), path.join(dir, 'batch'));
        await waitFor(() => has('default/job'), { message: 'job in a dir moved in' });
        await writeFile(path.join(dir, 'batch/job.yaml'), manifest('job', '96Mi'));
        await waitFor(() => has('default/job', 96 * 2 ** 20), { message: 'an edit in the dir moved in' });
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
      // Removed: its containers go; the others stay.
      await rm(path.join(dir, 'team'), { recursive: true });
      await waitFor(() => !has('default/api'), { message: 'api gone with its dir' });
      assert.ok(has('default/web') && has('default/job'));
    });
  });

  it('a directory replaced under the same name (rm -rf && mkdir; a blue/green mv) is watched again, and so is a root made again', async () => {
    await withSource({ 'team/api.yaml': manifest('api'), 'cur/web.yaml': manifest('web'), 'spare/db.yaml': manifest('db') }, async ({ dir, src }) => {
      const memOf = (key: string) => src.snapshot().containers.get(key)?.spec.resources.memoryBytes;
      const Mi = (n: number) => n * 2 ** 20;
      // rm -rf team && mkdir team && write: the old watch followed the deleted directory.
      await rm(path.join(dir, 'team'), { recursive: true });
      await mkdir(path.join(dir, 'team'));
      await writeFile(path.join(dir, 'team/api.yaml'), manifest('api', '80Mi'));
      await waitFor(() => memOf('default/api') === Mi(80), { message: 'api read from the new team/' });
      await writeFile(path.join(dir, 'team/api.yaml'), manifest('api', '96Mi'));
      await waitFor(() => memOf('default/api') === Mi(96), { message: 'an edit in the new team/ (its own watch)' });
      // Blue/green: mv cur prev; mv next cur; rm -rf prev (next/ made beside the tree, so that no
      // two files declare web at once): the new cur/ is watched, not the old one under its name.
      const next = `${dir}-next`;
      await mkdir(next);
      await writeFile(path.join(next, 'web.yaml'), manifest('web', '72Mi'));
      await rename(path.join(dir, 'cur'), path.join(dir, 'prev'));
      await rename(next, path.join(dir, 'cur'));
      await rm(path.join(dir, 'prev'), { recursive: true });
      await waitFor(() => memOf('default/web') === Mi(72), { message: 'web from the swapped-in cur/' });
      await writeFile(path.join(dir, 'cur/web.yaml'), manifest('web', '88Mi'));
      await waitFor(() => memOf('default/web') === Mi(88), { message: 'an edit in the swapped-in cur/' });
      // The root itself removed and made again at once (the source never sees it missing).
      const saved = `${dir}-saved`;
      await rename(dir, saved);
      try {
        await mkdir(dir);
        await writeFile(path.join(dir, 'web.yaml'), manifest('web', '40Mi'));
        await waitFor(() => memOf('default/web') === Mi(40), { message: 'the new root read' });
        await writeFile(path.join(dir, 'web.yaml'), manifest('web', '48Mi'));
        await waitFor(() => memOf('default/web') === Mi(48), { message: 'an edit in the new root (watched again)' });
      } finally {
        await rm(saved, { recursive: true, force: true });
      }
    });
  });

  it('an invalid file keeps its last good keys protected; fixing it brings them back; deleting it removes them', async () => {
    await withSource({ 'web.yaml': manifest('web'), 'other.yaml': manifest('other') }, async ({ dir, src, changes }) => {
      const file = path.join(dir, 'web.yaml');
      await writeFile(file, 'apiVersion: acetate.dev/v1alpha1\nkind: [\n');
      await waitFor(() => src.snapshot().problems.length > 0, { message: 'a problem' });
      let s = src.snapshot();
      assert.ok(s.protectedKeys.has('default/web'), 'last known good key protected');
      assert.ok(!s.containers.has('default/web'));
      assert.ok(s.failingOrigins.has(file));
      assert.equal(s.problems[0]!.origin, file);
      assert.match(s.problems[0]!.message, /YAML syntax error/);
      assert.ok(changes.some((c) => c !== 'all' && c.includes('default/web')));
      await writeFile(file, manifest('web', '80Mi'));
      await waitFor(() => src.snapshot().containers.has('default/web'), { message: 'fixed' });
      s = src.snapshot();
      assert.equal(s.problems.length, 0);
      assert.ok(!s.protectedKeys.has('default/web'));
      await rm(file);
      await waitFor(() => !src.snapshot().containers.has('default/web') && !src.snapshot().protectedKeys.has('default/web'), { message: 'removed' });
      assert.ok(src.snapshot().complete);
    });
  });

  it('the same key in two files is a conflict: protected until one is removed', async () => {
    await withSource({ 'web.yaml': manifest('web'), 'other.yaml': manifest('other') }, async ({ dir, src }) => {
      await writeFile(path.join(dir, 'web-copy.yaml'), manifest('web', '1Gi'));
      await waitFor(() => src.snapshot().protectedKeys.has('default/web'), { message: 'conflict' });
      assert.ok(src.snapshot().problems.some((p) => p.kind === 'conflict' && p.keys.includes('default/web')));
      await rm(path.join(dir, 'web-copy.yaml'));
      await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 64 * 2 ** 20, { message: 'resolved' });
    });
  });

  it('a directory that empties or disappears is not a complete snapshot (nothing gets destroyed)', async () => {
    await withTmpDir(async (parent) => {
      const dir = path.join(parent, 'manifests');
      await mkdir(dir);
      await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
      const src = new FileSource({ dir, debounceMs: 50, relistMs: 0 });
      const changes: Change[] = [];
      await src.start((k) => changes.push(k));
      try {
        await rm(path.join(dir, 'web.yaml'));
        await waitFor(() => !src.snapshot().containers.has('default/web'), { message: 'file gone' });
        assert.equal(src.snapshot().complete, false);
        assert.match(src.snapshot().incompleteReason ?? '', /no manifest files/);
        assert.ok(changes.includes('all'));
        await rm(dir, { recursive: true });
        await src.relist();
        assert.equal(src.snapshot().complete, false);
        assert.match(src.snapshot().incompleteReason ?? '', /missing/);
        // It comes back: the re-list sees it, and the watcher follows it again.
        await mkdir(dir);
        await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
        await src.relist();
        assert.ok(src.snapshot().complete);
        await writeFile(path.join(dir, 'db.yaml'), manifest('db'));
        await waitFor(() => src.snapshot().containers.has('default/db'), { message: 'watching again' });
      } finally {
        await src.stop();
      }
    });
  });

  it('--allow-empty: an empty directory is a complete snapshot', async () => {
    await withSource(
      {},
      async ({ src }) => {
        assert.equal(src.snapshot().complete, true);
      },
      { allowEmpty: true },
    );
  });

  it('the periodic re-list catches what the watcher missed, and reports nothing when nothing changed', async () => {
    await withSource({ 'web.yaml': manifest('web') }, async ({ src, changes }) => {
      await src.relist();
      assert.deepEqual(changes, []);
    });
  });

  it('a root that is a symlink (git-sync `current`): edits under it are seen at once and named under the root as given; a link made inside the tree is read at once', async () => {
    await withTmpDir(async (base) => {
      const rev1 = path.join(base, 'rev1');
      await mkdir(rev1);
      await writeFile(path.join(rev1, 'web.yaml'), manifest('web'));
      const current = path.join(base, 'current');
      await symlink(rev1, current);
      const src = new FileSource({ dir: current, debounceMs: 100, relistMs: 0 });
      await src.start(() => undefined);
      try {
        await writeFile(path.join(rev1, 'web.yaml'), manifest('web', '96Mi'));
        await waitFor(() => src.snapshot().containers.get('default/web')?.spec.resources.memoryBytes === 96 * 2 ** 20, {
          message: 'the edit under the symlinked root',
        });
        const source = src.snapshot().containers.get('default/web')?.source;
        assert.equal(source?.kind === 'file' ? source.file : undefined, path.join(current, 'web.yaml'), 'named under the root as given, not its target');
        // A link to a dir made inside the tree (the watch follows no link: only the link's own event comes).
        const store = path.join(rev1, '.store');
        await mkdir(store);
        await writeFile(path.join(store, 'db.yaml'), manifest('db'));
        await symlink(store, path.join(rev1, 'more'));
        await waitFor(() => src.snapshot().containers.has('default/db'), { message: 'the manifest under the new link' });
      } finally {
        await src.stop();
      }
    });
  });

  it('files read after a change are cached once old enough and the persisted cache saved: a later reader (acetate plan) parses nothing', async () => {
    await withTmpDir(async (dir) => {
      const tree = path.join(dir, 'm');
      await mkdir(tree);
      await writeFile(path.join(tree, 'a.yaml'), manifest('a'));
      const cacheFile = path.join(dir, 'manifest-cache.json');
      const fingerprint = manifestFingerprint({});
      const src = new FileSource({ dir: tree, debounceMs: 50, relistMs: 0, persistedCache: { file: cacheFile, fingerprint } });
      const changes: Change[] = [];
      await src.start((keys) => changes.push(keys));
      try {
        await writeFile(path.join(tree, 'b.yaml'), manifest('b', '32Mi'));
        await waitFor(() => changes.some((c) => c !== 'all' && c.includes('default/b')), { message: 'b read' });
        // A second file late in the burst: still too young when b is old enough, kept in its own time.
        await new Promise((r) => setTimeout(r, 2_500));
        await writeFile(path.join(tree, 'c.yaml'), manifest('c'));
        await waitFor(() => changes.some((c) => c !== 'all' && c.includes('default/c')), { message: 'c read' });
        // Too young to be cached when read; saved within RACY_MS and a margin.
        const saved = async () => {
          const reader = new ManifestCache();
          if (!loadManifestCacheFile(cacheFile, fingerprint, reader)) return undefined;
          if (!['a', 'b', 'c'].every((n) => reader.isKept(path.join(tree, `${n}.yaml`)))) return undefined;
          // Each entry used as it is (one whose file differed would be parsed and replaced: a new generation).
          const snap = await loadManifestDir(tree, { cache: reader });
          return snap.containers.size === 3 && reader.generation === 0 ? snap : undefined;
        };
        const snap = await waitFor(saved, { timeoutMs: 12_000, message: 'every file served from the saved cache' });
        assert.equal(snap.containers.get('default/b')?.spec.resources.memoryBytes, 32 * 2 ** 20);
        assert.equal(changes.filter((c) => c === 'all' || c.includes('default/b')).length, 1, 'keeping b once settled reported no change');
      } finally {
        await src.stop();
      }
    });
  });
});
