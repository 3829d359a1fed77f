/**
 * The node's default disk through the CLI (real loop devices, XFS, runc): `--default-disk` (or
 * ACETATE_DEFAULT_DISK) gives a container that sets no resources.disk that disk, `plan` shows it,
 * and the container then gets ENOSPC inside at that size instead of filling the node; a container
 * with its own disk keeps its own; a bad value is refused before anything is done.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { dfRoot, inContainer, MI } from '../support/disk.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { manifest } from '../support/manifest.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

describe('node default disk through the CLI (--default-disk, ACETATE_DEFAULT_DISK)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;

  before(async () => {
    stateDir = await makeTmpStateDir('acetate-defdisk-');
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-defdisk-manifests-'));
    await writeFile(path.join(dir, 'plain.yaml'), manifest('plain', { cpu: null, memory: null, pids: null }));
    await writeFile(path.join(dir, 'own.yaml'), `${manifest('own', { cpu: null, memory: null, pids: null })}  resources:\n    disk: 32Mi\n`);
  });

  after(async () => {
    await cleanupStateDir(stateDir);
    await assertNoLeaks(stateDir);
    await rm(dir, { recursive: true, force: true });
  });

  const pidOf = async (name: string): Promise<number> => {
    const r = await runCli(['describe', name, '-o', 'json'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as StatusRecord).actual!.pid!;
  };

  it('a bad value is refused in words before anything is read', async () => {
    const r = await runCli(['plan', '-f', dir], { stateDir, env: { ACETATE_DEFAULT_DISK: 'lots' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--default-disk\/ACETATE_DEFAULT_DISK "lots" is not a quantity such as 10Gi/);
    const f = await runCli(['--default-disk', '4Mi', 'plan', '-f', dir], { stateDir });
    assert.equal(f.code, 1);
    assert.match(f.stderr, /"4Mi" is below 16Mi/);
  });

  it('plan shows the default on a container without a disk; apply gives it that disk; its own disk is kept', async () => {
    const p = await runCli(['--default-disk', '64Mi', 'plan', '-f', dir], { stateDir });
    assert.equal(p.code, 2, p.stderr); // plan: 2 when there are changes
    assert.match(p.stdout, /\+ create +default\/plain .*disk 64Mi/);
    assert.match(p.stdout, /\+ create +default\/own .*disk 32Mi/);

    const a = await runCli(['apply', '-f', dir], { stateDir, env: { ACETATE_DEFAULT_DISK: '64Mi' } });
    assert.equal(a.code, 0, a.stderr);
    const plain = await pidOf('plain');
    const df = await dfRoot(plain);
    assert.ok(df.size > 40 * MI && df.size <= 64 * MI, `df / inside shows a 64Mi filesystem: ${df.size}`);
    const w = await inContainer(plain, 'dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo rc=$?');
    assert.match(w.out, /No space left on device/, 'the container fills its own disk, not the node');
    assert.ok((await dfRoot(await pidOf('own'))).size <= 32 * MI, 'a container with its own disk keeps it');

    // Same option, nothing to do; without it the plan would move the private area out of its image.
    const again = await runCli(['--default-disk', '64Mi', 'plan', '-f', dir], { stateDir });
    assert.match(again.stdout, /No changes/);
    const without = await runCli(['plan', '-f', dir], { stateDir });
    assert.match(without.stdout, /resize +default\/plain +disk 64Mi → unlimited .*the private area moves out of its own filesystem/);
  });
});
