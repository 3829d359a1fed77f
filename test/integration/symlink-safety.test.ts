/**
 * A manifest directory is less trusted than the node: `x.yaml -> /etc/shadow` (or a link to any
 * file outside) is refused by validate, plan and run without being read, and no byte of the target
 * reaches output, logs or status. A directory published git-sync style (a symlink renamed over
 * `current`) is noticed at once, not at the next re-list.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { cgroupValue } from '../support/proc.js';
import { makeCliRoot, destroyAllAndAssertNoLeaks, type CliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { filesContaining, secretPieces } from '../support/leak-scan.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const MI = 1024 * 1024;
const SECRET = 'root:$y$j9T$SECRETMARK7f3a9Q$hashhashhash:20228:0:99999:7:::\nsvcsecretuser:*:12345:0:99999:7:::\n';

describe('symlinks out of a manifest directory (real files, real runc)', function () {
  this.timeout(120_000);
  let r: CliRoot;
  let acetate: CliProcess | undefined;
  let markers: string[];

  before(async () => {
    r = await makeCliRoot('acetate-symlinks-');
    await writeFile(path.join(r.root, 'secret'), SECRET, { mode: 0o600 });
    markers = secretPieces(SECRET);
    // The real /etc/shadow too: its lines must not appear either (read here only to know what to look for).
    const shadow = await readFile('/etc/shadow', 'utf8').catch(() => '');
    // Its lines with a password hash: a host-template container's locked copy keeps the others (no secret in them).
    markers.push(...secretPieces(shadow).filter((m) => /^[^:]*:\$/.test(m)));
    await writeFile(path.join(r.dir, 'web.yaml'), manifest('web'));
    await symlink(path.join(r.root, 'secret'), path.join(r.dir, 'x.yaml'));
    await symlink('/etc/shadow', path.join(r.dir, 's.yaml'));
    await symlink(r.root, path.join(r.dir, 'up')); // a directory link out of the tree
    await mkdir(path.join(r.dir, 'inside'));
    await writeFile(path.join(r.dir, 'inside', 'db.yaml'), manifest('db'));
    await symlink('inside/db.yaml', path.join(r.dir, 'db-link.yml')); // stays inside: followed (and db declared twice)
  });

  after(async () => {
    await acetate?.stop();
    await destroyAllAndAssertNoLeaks({ ...r, apply: () => runCli(['apply', '-f', r.dir, '--allow-empty'], { stateDir: r.stateDir }) });
  });

  const assertNoSecret = (what: string, text: string): void => {
    for (const m of markers) assert.ok(!text.includes(m), `${what} holds a piece of the link's target: ${JSON.stringify(m.slice(0, 12))}…`);
  };

  it('validate refuses the links, names them, and prints nothing of their targets', async () => {
    const v = await runCli(['validate', r.dir], { stateDir: r.stateDir });
    assert.equal(v.code, 1);
    assert.match(v.stderr, /x\.yaml: symlink resolves outside the manifest directory: refused, not read/);
    assert.match(v.stderr, /s\.yaml: symlink resolves outside the manifest directory: refused, not read/);
    assert.match(v.stderr, /\/up: symlink resolves outside/);
    assert.match(v.stderr, /default\/db is declared 2 times/); // the link inside was followed
    assertNoSecret('validate', v.stdout + v.stderr);
  });

  it('plan refuses them too, and still plans the valid manifest', async () => {
    const p = await runCli(['plan', '-f', r.dir], { stateDir: r.stateDir });
    assert.match(p.stdout, /create\s+default\/web/);
    assert.match(p.stderr, /x\.yaml: symlink resolves outside/);
    assertNoSecret('plan', p.stdout + p.stderr);
  });

  it('run creates the valid container; no byte of the targets in its log, status or state dir', async () => {
    acetate = new CliProcess(['run', '-f', r.dir, ...quickRunFlags(), '--log-level', 'debug', '--log-format', 'json'], { stateDir: r.stateDir });
    const pid = await waitFor(
      async () => {
        const d = await runCli(['describe', 'web', '-o', 'json'], { stateDir: r.stateDir });
        if (d.code !== 0) return undefined;
        const rec = JSON.parse(d.stdout) as StatusRecord;
        return rec.actual?.state === 'running' ? rec.actual.pid : undefined;
      },
      { timeoutMs: 90_000, message: () => `web running (stderr: ${acetate?.stderr})` },
    );
    assert.equal(await cgroupValue(pid, 'memory', 'memory.limit_in_bytes'), String(64 * MI));
    await waitFor(() => acetate!.logged(/x\.yaml: symlink resolves outside the manifest directory/), { message: 'the refusal logged' });
    const get = await runCli(['get', '-o', 'json'], { stateDir: r.stateDir });
    const desc = await runCli(['describe', 'db'], { stateDir: r.stateDir });
    assertNoSecret('run output', acetate.stdout + acetate.stderr);
    // The watcher does not walk through the link out of the tree (it once watched 40 levels of up/manifests/up/…).
    assert.ok(!(acetate.stdout + acetate.stderr).includes(path.join(r.dir, 'up') + '/'), 'a path through the up link in the log');
    assertNoSecret('get/describe', get.stdout + get.stderr + desc.stdout + desc.stderr);
    assert.deepEqual(await filesContaining(r.stateDir, markers), [], 'state dir files holding a piece of the target');
  });

  it('a directory swapped git-sync style (symlink renamed over current) is applied at once, long before the re-list', async () => {
    await acetate?.stop();
    const rev1 = path.join(r.root, 'rev1');
    const rev2 = path.join(r.root, 'rev2');
    await mkdir(rev1);
    await mkdir(rev2);
    await writeFile(path.join(rev1, 'web.yaml'), manifest('web'));
    await writeFile(path.join(rev2, 'web.yaml'), manifest('web', { memory: '96Mi' }));
    const current = path.join(r.root, 'current');
    await symlink(rev1, current);
    // The re-list is 10 minutes away: only the watch can see the swap.
    const flags = quickRunFlags();
    const relistAt = flags.indexOf('--relist');
    flags[relistAt + 1] = '10m';
    acetate = new CliProcess(['run', '-f', current, ...flags, '--log-format', 'json'], { stateDir: r.stateDir });
    const pid = await waitFor(
      async () => {
        const d = await runCli(['describe', 'web', '-o', 'json'], { stateDir: r.stateDir });
        const rec = d.code === 0 ? (JSON.parse(d.stdout) as StatusRecord) : undefined;
        return rec?.actual?.state === 'running' && rec.actual.limits.memory === '64Mi' ? rec.actual.pid : undefined;
      },
      { timeoutMs: 90_000, message: () => `web running from rev1 (stderr: ${acetate?.stderr})` },
    );
    await waitFor(() => acetate!.url, { message: 'the metrics address logged' });
    await waitFor(async () => (await fetch(`${acetate!.url}/readyz`)).status === 200, { timeoutMs: 30_000, message: '/readyz' });
    const t0 = Date.now();
    await symlink(rev2, `${current}.tmp`);
    await rename(`${current}.tmp`, current);
    await waitFor(async () => (await cgroupValue(pid, 'memory', 'memory.limit_in_bytes')) === String(96 * MI), {
      timeoutMs: 10_000,
      message: 'the memory limit of rev2 in the cgroup within 10 s (the re-list is 10 min away)',
    });
    const took = Date.now() - t0;
    assert.ok(took < 10_000, `applied after ${took} ms`);
    await acetate.stop();
    acetate = undefined;
  });
});
