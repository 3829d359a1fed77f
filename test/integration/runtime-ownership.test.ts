/**
 * acetate only sees and touches what it created: a runc container in its runc root without its
 * annotations and record is invisible; two instances with different state dirs are isolated.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError } from '../../src/runtime/runtime.js';
import { buildOciConfig } from '../../src/runtime/runc/oci-config.js';
import { isAlive } from '../../src/util/processes.js';
import { RuncCli } from '../../src/runtime/runc/runc-cli.js';
import { findBinary } from '../../src/util/find-binary.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';

function run(file: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    // stdio ignored: runc's container init would otherwise inherit (and hold) our pipes.
    const child = spawn(file, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('RuncRuntime ownership and isolation', function () {
  this.timeout(60_000);
  let a: TmpState;
  let b: TmpState;
  let runc: RuncCli;

  before(async () => {
    a = await tmpState();
    b = await tmpState();
    runc = new RuncCli({ binary: (await findBinary('runc'))!, root: a.runtime.paths.runcRoot });
  });

  after(async () => {
    await runc.delete('default_ghost', { force: true }).catch(() => undefined);
    await a.cleanup();
    await b.cleanup();
    await assertNoLeaks(a.dir, { dirRemoved: true });
    await assertNoLeaks(b.dir, { dirRemoved: true });
  });

  it('does not list or touch a runc container in its root that has no acetate annotations and record', async () => {
    // A foreign container whose id even looks like one of ours (default/ghost).
    const bundle = path.join(a.dir, 'foreign-bundle');
    const rootfs = await makeBusyboxRootfs(path.join(bundle, 'rootfs'));
    const config = buildOciConfig({
      namespace: 'default',
      name: 'ghost',
      spec: testSpec({ command: ['sleep', '1000'] }),
      specHash: 'x',
      rootfsPath: rootfs,
      cgroupsPath: `${a.runtime.paths.cgroupParent}/foreign-ghost`,
      hostNofileHard: 1024,
      swapAccounting: false,
    });
    const foreign = { ...config, annotations: {} };
    await mkdir(bundle, { recursive: true });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(foreign));
    assert.equal(await run(runc.binary, ['--root', runc.root, 'run', '--detach', '--bundle', bundle, 'default_ghost']), 0);
    const ghost = await runc.state('default_ghost');
    assert.equal(ghost?.status, 'running');

    await a.runtime.create({ namespace: 'default', name: 'mine', spec: testSpec(), source: FILE_SOURCE });
    await a.runtime.start('default/mine');

    assert.deepEqual(
      (await a.runtime.list()).map((c) => c.key),
      ['default/mine'],
    );
    assert.equal(await a.runtime.get('default/ghost'), undefined);
    await assert.rejects(a.runtime.start('default/ghost'), NotFoundError);
    await assert.rejects(a.runtime.stop('default/ghost', { graceSeconds: 0 }), NotFoundError);
    await a.runtime.remove('default/ghost', { keepPrivateArea: false }); // nothing of ours: a no-op
    await a.runtime.remove('default/mine', { keepPrivateArea: false });

    const still = await runc.state('default_ghost');
    assert.equal(still?.status, 'running', 'the foreign container was left alone');
    assert.equal(still?.pid, ghost!.pid);
    assert.ok(await isAlive(ghost!.pid));
    await runc.delete('default_ghost', { force: true });
  });

  it('keeps two instances with different state dirs apart, even with the same container key', async () => {
    for (const s of [a, b]) await s.runtime.create({ namespace: 'default', name: 'same', spec: testSpec(), source: FILE_SOURCE });
    const pa = (await a.runtime.start('default/same')).pid;
    const pb = (await b.runtime.start('default/same')).pid;
    assert.notEqual(pa, pb);
    assert.notEqual(a.runtime.paths.cgroupParent, b.runtime.paths.cgroupParent);
    assert.match(await readFile(`/proc/${pa}/cgroup`, 'utf8'), new RegExp(`:memory:${a.runtime.paths.cgroupParent}/default_same$`, 'm'));
    assert.match(await readFile(`/proc/${pb}/cgroup`, 'utf8'), new RegExp(`:memory:${b.runtime.paths.cgroupParent}/default_same$`, 'm'));
    assert.deepEqual(
      (await a.runtime.list()).map((c) => c.process.pid),
      [pa],
    );
    assert.deepEqual(
      (await b.runtime.list()).map((c) => c.process.pid),
      [pb],
    );

    await a.runtime.remove('default/same', { keepPrivateArea: false });
    await assertNoLeaks(a.dir);
    assert.ok(await isAlive(pb), "removing a's container leaves b's running");
    assert.equal((await b.runtime.get('default/same'))!.process.state, 'running');
    await b.runtime.remove('default/same', { keepPrivateArea: false });
    await assertNoLeaks(b.dir);
  });
});
