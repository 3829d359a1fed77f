/**
 * The host view's markers are placed in a running container's upper dir (host-view-watch.ts), which
 * its root changes at will: a link it puts where a marker goes, or in place of a dir above it, must
 * not make acetate (node root) create, re-own or write a node file. The race a tenant wins from
 * inside (it sees a node entry vanish when its whiteout lands, and puts a link there before the
 * chown) is run here by a real racing process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureParents, place, replaceFile, type ApplyTarget } from '../../src/runtime/walls/host-markers.js';
import { fillDisk, smallDiskPerTest } from '../support/small-disk.js';
import type { ViewEntry } from '../../src/runtime/walls/host-masks.js';

const ID_BASE = 3_900_000_000;
const entry = (p: string, action: ViewEntry['action']): ViewEntry => ({ path: p, action, why: 'test', source: 'default' }) as unknown as ViewEntry;

describe('host-view markers follow no link the container puts in its upper dir (upper-beneath.ts)', () => {
  let root: string;
  let t: ApplyTarget;
  let canary: (name: string) => string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'acetate-markers-links-'));
    const hostRoot = path.join(root, 'host');
    mkdirSync(path.join(hostRoot, 'var', 'lib'), { recursive: true });
    const upper = path.join(root, 'upper');
    mkdirSync(path.join(upper, 'var', 'lib'), { recursive: true });
    const containerDir = path.join(root, 'container');
    mkdirSync(containerDir);
    mkdirSync(path.join(root, 'node'));
    t = { hostRoot, stateDir: root, containerDir, upper, idBase: ID_BASE };
    canary = (name) => {
      const f = path.join(root, 'node', name);
      writeFileSync(f, 'node data\n', { mode: 0o600 });
      return f;
    };
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a dir above the marker replaced by a link to a node dir: nothing is made there', async () => {
    rmSync(path.join(t.upper, 'var', 'lib'), { recursive: true });
    symlinkSync(path.join(root, 'node'), path.join(t.upper, 'var', 'lib'));
    mkdirSync(path.join(t.hostRoot, 'var', 'lib', 'svc', 'data'), { recursive: true });
    assert.equal(await ensureParents('/var/lib/svc/data/x', t), undefined, 'a linked dir on the way is the container’s: left to it');
    assert.deepEqual(readdirSync(path.join(root, 'node')), [], 'nothing made in the node dir the link points at');
  });

  it('a link already where a marker goes: the marker is not placed through it (each kind)', async () => {
    const kinds: ViewEntry['action'][] = [{ kind: 'absent' }, { kind: 'empty' }, { kind: 'symlink', target: '/nowhere' }, { kind: 'machine-id' }];
    for (const [i, action] of kinds.entries()) {
      const name = `m${i}`;
      const f = canary(name);
      symlinkSync(f, path.join(t.upper, 'var', 'lib', name));
      const at = await ensureParents(`/var/lib/${name}`, t);
      assert.ok(at);
      try {
        await assert.rejects(place(entry(`/var/lib/${name}`, action), t, at), /EEXIST|exists/, action.kind);
      } finally {
        closeSync(at.fd);
      }
      const st = statSync(f);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777, st.size], [0, 0, 0o600, 'node data\n'.length], `${action.kind}: the node file is untouched`);
    }
  });

  it('a process racing each whiteout with a link (as from inside the container) never gets a node file re-owned', async function () {
    this.timeout(60_000);
    const N = 40;
    const canaries = Array.from({ length: N }, (_, i) => canary(`w${i}`));
    const dir = path.join(t.upper, 'var', 'lib');
    // The tenant's loop: any w<N> that is not a link yet is swapped for one to its node file.
    const racer = spawn(
      'perl',
      [
        '-e',
        'my ($d, $n) = @ARGV; while (1) { opendir(my $h, $d) or next; for my $e (readdir $h) { next unless $e =~ /^w\\d+$/; next if -l "$d/$e"; unlink "$d/$e"; symlink("$n/$e", "$d/$e"); } closedir $h; }',
        dir,
        path.join(root, 'node'),
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < N; i++) {
        const at = await ensureParents(`/var/lib/w${i}`, t);
        assert.ok(at);
        try {
          await place(entry(`/var/lib/w${i}`, { kind: 'absent' }), t, at).catch(() => undefined); // the racer may win the name first
        } finally {
          closeSync(at.fd);
        }
      }
    } finally {
      racer.kill('SIGKILL');
    }
    const swapped = readdirSync(dir).filter((e) => lstatSync(path.join(dir, e)).isSymbolicLink()).length;
    assert.ok(swapped > 0, 'the racer swapped markers for links (else this test tried nothing)');
    const reowned = canaries.filter((f) => statSync(f).uid !== 0);
    assert.deepEqual(reowned, [], 'no node file was handed to the range');
  });
});

describe('a file marker whose content changes is replaced, never removed first (host-markers.ts replaceFile)', () => {
  // The container's disk: small, so the container can fill it (as a `resources.disk` image).
  const disk = smallDiskPerTest('acetate-markers-full-', { size: '256k', inodes: 64 });

  it('with the disk full the old copy stays in place (still hiding the node file); with room it is replaced', async () => {
    const { root, upper } = disk();
    const containerDir = path.join(root, 'container');
    mkdirSync(containerDir);
    writeFileSync(path.join(containerDir, 'machine-id'), `${'a'.repeat(32)}\n`);
    mkdirSync(path.join(upper, 'etc'));
    writeFileSync(path.join(upper, 'etc', 'machine-id'), 'the old copy\n');
    const t: ApplyTarget = { hostRoot: path.join(root, 'host'), stateDir: root, containerDir, upper, idBase: ID_BASE };
    const e = entry('/etc/machine-id', { kind: 'machine-id' });
    // The container fills its disk: every block and every inode.
    await fillDisk(upper, true);
    const at = await ensureParents('/etc/machine-id', t);
    assert.ok(at);
    try {
      await assert.rejects(replaceFile(e, t, at), /ENOSPC/);
      assert.equal(readFileSync(path.join(upper, 'etc', 'machine-id'), 'utf8'), 'the old copy\n', 'the old copy is still there');
      assert.deepEqual(readdirSync(path.join(upper, 'etc')), ['machine-id'], 'no temp file left');
      rmSync(path.join(upper, 'fill'));
      await replaceFile(e, t, at);
    } finally {
      closeSync(at.fd);
    }
    assert.equal(readFileSync(path.join(upper, 'etc', 'machine-id'), 'utf8'), `${'a'.repeat(32)}\n`);
    const st = statSync(path.join(upper, 'etc', 'machine-id'));
    assert.deepEqual([st.uid, st.mode & 0o777], [ID_BASE, 0o444]);
  });
});
