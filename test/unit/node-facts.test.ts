/**
 * The host template's node facts kept once per node (walls/node-facts.ts): a second state dir's
 * first process takes the answer another instance computed, within its validity rules, and a file
 * anyone but root could have written, or one that is not JSON, is never taken. Each "process"
 * below is a real one (test/support/node-facts-worker.ts): the answers are remembered per process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readFile, rename, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { withTmpDir } from '../support/tmpdir.js';
import { etcOwnerOnly, forgetOwnerOnlyWalk } from '../../src/runtime/walls/etc-walk.js';
import { factsStore } from '../../src/runtime/walls/node-facts.js';

const WORKER = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../support/node-facts-worker.js');

interface Seen {
  ownerOnly: string[];
  owned: string[];
  file: string;
}

/** A first process of state dir `name`: what it takes as the node's facts. */
async function firstProcess(root: string, nodeDir: string, stateDir: string, more: string[] = []): Promise<Seen> {
  const { stdout } = await promisify(execFile)(process.execPath, [WORKER, root, nodeDir, stateDir, ...more]);
  return JSON.parse(stdout) as Seen;
}

/** A node root: /etc with one owner-only file and a subdir, dpkg with two packages; dirs' mtimes in the past (a dir changed in the last 50 ms is not cached). */
async function makeNode(root: string): Promise<void> {
  await mkdir(path.join(root, 'etc/sub'), { recursive: true });
  await writeFile(path.join(root, 'etc/secret'), 'k', { mode: 0o600 });
  await writeFile(path.join(root, 'etc/open'), 'o', { mode: 0o644 });
  await writeFile(path.join(root, 'etc/sub/conf'), 'c', { mode: 0o644 });
  const info = path.join(root, 'var/lib/dpkg/info');
  await mkdir(info, { recursive: true });
  await writeFile(path.join(info, 'apt.list'), '/.\n/var/lib/apt\n');
  await writeFile(path.join(info, 'git.list'), '/.\n/var/lib/git\n');
  await writeFile(path.join(root, 'var/lib/dpkg/status'), '');
  const past = new Date(Date.now() - 10_000);
  for (const d of ['etc', 'etc/sub', 'var/lib/dpkg/info', 'var/lib/dpkg/status']) await utimes(path.join(root, d), past, past);
}

describe('node facts kept once per node (walls/node-facts.ts)', function () {
  this.timeout(60_000);

  it("a second state dir's first process takes the node-wide answer; a changed dir or dpkg status makes it compute again", () =>
    withTmpDir(async (tmp) => {
      const root = path.join(tmp, 'node');
      const nodeDir = path.join(tmp, 'node-facts');
      await makeNode(root);
      const a = await firstProcess(root, nodeDir, path.join(tmp, 'a'));
      assert.deepEqual(a.ownerOnly, ['/etc/secret']);
      assert.deepEqual(a.owned, ['/var/lib/apt', '/var/lib/git']);
      assert.equal(path.dirname(a.file), nodeDir, 'kept node-wide');
      assert.equal((await stat(a.file)).mode & 0o777, 0o600);
      assert.equal((await stat(nodeDir)).mode & 0o777, 0o700);
      await assert.rejects(stat(path.join(tmp, 'a/host-view/owner-only.json')), 'not in the state dir');

      // Changes no walk or dpkg read would miss, but that leave every key the same: a chmod (no
      // dir's mtime changes) and a list file rewritten with the info dir's and status' mtimes kept.
      await chmod(path.join(root, 'etc/open'), 0o600);
      await writeFile(path.join(root, 'var/lib/dpkg/info/git.list'), '/.\n/var/lib/git\n/var/lib/gitweb\n');
      const b = await firstProcess(root, nodeDir, path.join(tmp, 'b'));
      assert.deepEqual(b.ownerOnly, ['/etc/secret'], 'the cached walk (a walk would have seen /etc/open)');
      assert.deepEqual(b.owned, ['/var/lib/apt', '/var/lib/git'], 'the cached dpkg answer');

      // A walked dir's mtime changed, dpkg's status rewritten: computed again.
      const later = new Date(Date.now() - 5_000);
      await utimes(path.join(root, 'etc/sub'), later, later);
      await utimes(path.join(root, 'var/lib/dpkg/status'), later, later);
      const c = await firstProcess(root, nodeDir, path.join(tmp, 'c'));
      assert.deepEqual(c.ownerOnly, ['/etc/open', '/etc/secret']);
      assert.deepEqual(c.owned, ['/var/lib/apt', '/var/lib/git', '/var/lib/gitweb']);
    }));

  it('the shown package dirs walked with /etc, in whatever order the listing gave them, key one walk', () =>
    withTmpDir(async (tmp) => {
      const root = path.join(tmp, 'node');
      const nodeDir = path.join(tmp, 'node-facts');
      await makeNode(root);
      for (const d of ['var/lib/apt', 'var/lib/git']) await mkdir(path.join(root, d), { recursive: true });
      await writeFile(path.join(root, 'var/lib/git/token'), 't', { mode: 0o600 });
      const past = new Date(Date.now() - 10_000);
      for (const d of ['var/lib/apt', 'var/lib/git']) await utimes(path.join(root, d), past, past);
      const a = await firstProcess(root, nodeDir, path.join(tmp, 'a'), ['/var/lib/git', '/var/lib/apt']);
      assert.deepEqual(a.ownerOnly, ['/etc/secret', '/var/lib/git/token']);
      await chmod(path.join(root, 'etc/open'), 0o600); // seen only by a walk
      const b = await firstProcess(root, nodeDir, path.join(tmp, 'b'), ['/var/lib/apt', '/var/lib/git']);
      assert.deepEqual(b.ownerOnly, ['/etc/secret', '/var/lib/git/token'], 'the cached walk, though the roots came in another order');
    }));

  it("run's watcher saw a change (forgetOwnerOnlyWalk): this process walks again, and its walk replaces the node-wide one", () =>
    withTmpDir(async (tmp) => {
      const root = path.join(tmp, 'node');
      const nodeDir = path.join(tmp, 'node-facts');
      await makeNode(root);
      const store = factsStore(root, nodeDir, path.join(tmp, 'run/host-view'));
      assert.deepEqual(
        (await etcOwnerOnly(root, Date.now(), [], store)).map((e) => e.path),
        ['/etc/secret'],
      );
      await stat(store.fileOf('owner-only'));
      await chmod(path.join(root, 'etc/open'), 0o600); // a chmod: no dir's mtime changes
      forgetOwnerOnlyWalk(root);
      assert.deepEqual(
        (await etcOwnerOnly(root, Date.now(), [], store)).map((e) => e.path),
        ['/etc/open', '/etc/secret'],
        'walked, not the file',
      );
      const kept = JSON.parse(await readFile(store.fileOf('owner-only'), 'utf8')) as { entries: { path: string }[] };
      assert.deepEqual(
        kept.entries.map((e) => e.path),
        ['/etc/open', '/etc/secret'],
        'the node-wide file holds the new walk',
      );
      assert.deepEqual((await firstProcess(root, nodeDir, path.join(tmp, 'b'))).ownerOnly, ['/etc/open', '/etc/secret'], 'another instance takes it');
    }));

  it('a node-wide file group-writable, a symlink, owned by another uid or not JSON is not taken; an untrusted dir: the state dir is used', () =>
    withTmpDir(async (tmp) => {
      const root = path.join(tmp, 'node');
      const nodeDir = path.join(tmp, 'node-facts');
      await makeNode(root);
      const { file } = await firstProcess(root, nodeDir, path.join(tmp, 'a'));
      const real = JSON.parse(await readFile(file, 'utf8')) as { entries: unknown[] };
      // A planted answer that hides nothing but /etc/planted (every key still valid).
      const plant = async (at = file) => writeFile(at, JSON.stringify({ ...real, entries: [{ path: '/etc/planted', mode: 0o100600 }] }), { mode: 0o600 });
      let n = 0;
      const next = () => firstProcess(root, nodeDir, path.join(tmp, `s${++n}`));

      await plant();
      assert.deepEqual((await next()).ownerOnly, ['/etc/planted'], "root's file, root only: taken (what the refusals below are seen against)");

      await chmod(file, 0o620);
      assert.deepEqual((await next()).ownerOnly, ['/etc/secret'], 'group-writable: walked again');
      assert.equal((await stat(file)).mode & 0o777, 0o600, 'and replaced by the new answer');

      await plant();
      await chown(file, 1000, 1000);
      assert.deepEqual((await next()).ownerOnly, ['/etc/secret'], 'owned by uid 1000: walked again');

      const elsewhere = path.join(tmp, 'planted.json');
      await plant(elsewhere);
      await rename(file, `${file}.old`);
      await symlink(elsewhere, file);
      assert.deepEqual((await next()).ownerOnly, ['/etc/secret'], 'a symlink: walked again');

      await writeFile(file, '{"roots": "/etc", "at": ', { mode: 0o600 });
      assert.deepEqual((await next()).ownerOnly, ['/etc/secret'], 'not JSON: walked again');
      await writeFile(file, JSON.stringify({ ...real, dirs: [7] }), { mode: 0o600 });
      assert.deepEqual((await next()).ownerOnly, ['/etc/secret'], 'not its shape: walked again');

      await plant();
      await chmod(nodeDir, 0o777);
      const s = await next();
      assert.deepEqual(s.ownerOnly, ['/etc/secret'], 'a dir anyone may write: its file not taken');
      assert.equal(s.file, path.join(tmp, `s${n}`, 'host-view/owner-only.json'), "the state dir's cache instead");
      await stat(s.file);
    }));
});
