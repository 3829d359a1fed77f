import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { waitFor } from '../support/wait.js';
import { isInside, listContained, OUTSIDE_MESSAGE, readContained } from '../../src/sources/files/contained.js';
import { listManifestFiles } from '../../src/sources/files/read-tree.js';
import { escapeControl, excerpt } from '../../src/sources/files/excerpt.js';
import { loadManifestDir } from '../../src/sources/files/load.js';
import { statManifest } from '../../src/sources/files/manifest-file.js';
import { withTmpDir } from '../support/tmpdir.js';

describe('manifest reads stay inside the tree; errors quote only escaped excerpts', () => {
  it('isInside: a sibling with the same prefix is outside', () => {
    assert.ok(isInside('/srv/m/a.yaml', '/srv/m'));
    assert.ok(isInside('/srv/m', '/srv/m'));
    assert.ok(!isInside('/srv/m2/a.yaml', '/srv/m'));
    assert.ok(!isInside('/etc/shadow', '/srv/m'));
  });

  it('readContained reads nothing through a link that leaves the root', () =>
    withTmpDir(async (d) => {
      await mkdir(path.join(d, 'm'));
      await writeFile(path.join(d, 'secret'), 'SECRET');
      await symlink(path.join(d, 'secret'), path.join(d, 'm', 'x.yaml'));
      const r = readContained(path.join(d, 'm', 'x.yaml'), path.join(d, 'm'), 1024);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && /outside the manifest directory/.test(r.message));
      const inside = readContained(path.join(d, 'secret'), d, 1024);
      assert.ok(inside.ok && inside.buf.toString() === 'SECRET');
    }));

  it('statManifest: a file inside is stat()ed; through a dir swapped for a link out of the tree, nothing is (no size, no type, no existence told)', () =>
    withTmpDir(async (d) => {
      const root = path.join(d, 'm');
      await mkdir(path.join(root, 'sub'), { recursive: true });
      await writeFile(path.join(root, 'sub', 'a.yaml'), 'a: 1\n');
      const st = statManifest(path.join(root, 'sub', 'a.yaml'), root);
      assert.ok(!('problems' in st) && st.size === 5);
      // The listing saw sub/ as a dir inside; now it leads out, to a big file, a FIFO and nothing.
      await mkdir(path.join(d, 'out'));
      await writeFile(path.join(d, 'out', 'a.yaml'), 'x'.repeat(2 * 2 ** 20));
      execFileSync('mkfifo', [path.join(d, 'out', 'f.yaml')]);
      await rename(path.join(root, 'sub'), path.join(d, 'old-sub'));
      await symlink(path.join(d, 'out'), path.join(root, 'sub'));
      for (const name of ['a.yaml', 'f.yaml']) {
        const r = statManifest(path.join(root, 'sub', name), root);
        assert.ok('problems' in r, name);
        assert.match(r.problems[0]!.message, /outside the manifest directory/, name);
      }
      // A symlink as the last component is checked on what it leads to as opened (inside: followed;
      // outside: refused, whatever it is: a big file, a FIFO, a device, or nothing at all).
      for (const [name, target] of [
        ['link.yaml', path.join(d, 'old-sub', 'a.yaml')],
        ['big.yaml', path.join(d, 'out', 'a.yaml')],
        ['fifo.yaml', path.join(d, 'out', 'f.yaml')],
        ['dev.yaml', '/dev/null'],
        ['shadow.yaml', '/etc/shadow'],
        ['missing.yaml', '/root/no-such-file-here'],
        ['missing-deep.yaml', '/root/no-such-dir/no-such-file'],
        ['relative.yaml', '../out/a.yaml'],
      ]) {
        await symlink(target!, path.join(root, name!));
        const r = statManifest(path.join(root, name!), root);
        assert.ok('problems' in r, name);
        assert.equal(r.problems[0]!.message, OUTSIDE_MESSAGE, `${name} -> ${target}`);
      }
      await symlink('no-such-file.yaml', path.join(root, 'broken-inside.yaml'));
      const broken = statManifest(path.join(root, 'broken-inside.yaml'), root);
      assert.ok('problems' in broken && broken.problems[0]!.message === 'cannot resolve: ENOENT', JSON.stringify(broken));
      await symlink('../m/link-target.yaml', path.join(root, 'inner.yaml'));
      await writeFile(path.join(root, 'link-target.yaml'), 'b: 2\n');
      const inner = statManifest(path.join(root, 'inner.yaml'), root);
      assert.ok(!('problems' in inner) && inner.size === 5);
    }));

  it('listContained: a directory swapped for a link out of the tree lists nothing; one inside is listed', () =>
    withTmpDir(async (d) => {
      const root = path.join(d, 'm');
      await mkdir(path.join(root, 'sub'), { recursive: true });
      await writeFile(path.join(root, 'sub', 'a.yaml'), 'a: 1\n');
      await mkdir(path.join(d, 'private'));
      execFileSync('mkfifo', [path.join(d, 'private', 'SECRET.yaml')]);
      const inside = await listContained(path.join(root, 'sub'), root);
      assert.ok(inside.ok && inside.entries.map((e) => e.name.toString()).join() === 'a.yaml');
      await rename(path.join(root, 'sub'), path.join(root, 'old'));
      await symlink(path.join(d, 'private'), path.join(root, 'sub'));
      const swapped = await listContained(path.join(root, 'sub'), root);
      assert.deepEqual(swapped, { ok: false, message: OUTSIDE_MESSAGE });
      const listed = await listManifestFiles(root);
      assert.doesNotMatch(JSON.stringify(listed), /SECRET/);
    }));

  it('a FIFO (or device) behind a link is never opened: the writer waiting on it stays blocked; one inside is not a regular file', () =>
    withTmpDir(async (d) => {
      await mkdir(path.join(d, 'm'));
      execFileSync('mkfifo', [path.join(d, 'fifo'), path.join(d, 'm', 'in.yaml')]);
      await symlink(path.join(d, 'fifo'), path.join(d, 'm', 'x.yaml'));
      // The shell's open for writing returns only once someone opens the FIFO for reading.
      const writer = spawn('sh', ['-c', `echo x > ${path.join(d, 'fifo')}`], { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => writer.once('exit', (code) => resolve(code)));
      try {
        await waitFor("the writer waits in the FIFO's open", async () => {
          const wchan = await readFile(`/proc/${writer.pid}/wchan`, 'utf8').catch(() => '');
          return /fifo|pipe|wait_for_partner/.test(wchan);
        });
        for (const f of ['x.yaml', 'in.yaml']) {
          const r = readContained(path.join(d, 'm', f), path.join(d, 'm'), 1024);
          assert.ok(!r.ok && (f === 'x.yaml' ? /outside the manifest directory/.test(r.message) : r.message === 'not a regular file'), f);
        }
        const still = await Promise.race([exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('blocked'), 300))]);
        assert.equal(still, 'blocked', 'an open for reading (even non-blocking) would have let the writer go on');
      } finally {
        writer.kill('SIGKILL');
        await exited;
      }
    }));

  it('a link out of the tree is a problem of its path: its containers are never destroyed for it', () =>
    withTmpDir(async (d) => {
      await mkdir(path.join(d, 'm'));
      await writeFile(path.join(d, 'secret'), 'apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata: {name: stolen}\n');
      await symlink(path.join(d, 'secret'), path.join(d, 'm', 'x.yaml'));
      const snap = await loadManifestDir(path.join(d, 'm'));
      assert.equal(snap.containers.size, 0);
      assert.deepEqual(
        snap.problems.map((p) => [path.basename(p.origin), p.message]),
        [['x.yaml', 'symlink resolves outside the manifest directory: refused, not read']],
      );
      assert.ok(snap.failingOrigins.has(path.join(d, 'm', 'x.yaml')));
      assert.equal(snap.complete, false);
    }));

  it('a file whose name is not UTF-8 is a problem named with its bytes escaped (a failing origin); the others load', () =>
    withTmpDir(async (d) => {
      const m = path.join(d, 'm');
      await mkdir(m);
      const doc = (name: string) =>
        `apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata: {name: ${name}}\nspec: {template: host, command: [sleep, '1']}\n`;
      await writeFile(Buffer.concat([Buffer.from(m + '/caf'), Buffer.from([0xe9, 0x1b]), Buffer.from('.yaml')]), doc('latin1'));
      await writeFile(path.join(m, 'ok.yaml'), doc('ok'));
      const snap = await loadManifestDir(m);
      assert.deepEqual([...snap.containers.keys()], ['default/ok']);
      assert.deepEqual(
        snap.problems.map((p) => [path.basename(p.origin), p.message]),
        [['caf\\xe9\\x1b.yaml', 'the name is not valid UTF-8: not read (rename it)']],
      );
      assert.ok(snap.failingOrigins.has(path.join(m, 'caf\\xe9\\x1b.yaml')));
    }));

  it('escapes control characters and cuts long text', () => {
    assert.equal(escapeControl('a\u001b[31mb\nc\u2028'), 'a\\u001b[31mb\\nc\\u2028');
    assert.equal(excerpt('x'.repeat(100), 10), `${'x'.repeat(9)}…`);
    assert.equal(excerpt('short', 10), 'short');
  });
});
