/**
 * Starting a created container through runc's exec fifo (what `runc start` does) must leave the
 * container exactly as `runc start` would: runc reports it running with the same pid, the process
 * is the container's command, and a dead init is an error, not a hang.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startThroughExecFifo } from '../../src/runtime/runc/exec-fifo.js';
import { buildOciConfig } from '../../src/runtime/runc/oci-config.js';
import { isAlive } from '../../src/util/processes.js';
import { RuncCli } from '../../src/runtime/runc/runc-cli.js';
import { findBinary } from '../../src/util/find-binary.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

function run(file: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' }); // runc's init would otherwise hold our pipes
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('starting a created runc container through its exec fifo', function () {
  this.timeout(60_000);
  let dir: string;
  let runc: RuncCli;
  let rootfs: string;
  const ids: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-fifo-'));
    runc = new RuncCli({ binary: (await findBinary('runc'))!, root: path.join(dir, 'runc') });
    rootfs = await makeBusyboxRootfs(path.join(dir, 'rootfs'));
  });

  after(async () => {
    for (const id of ids) await runc.delete(id, { force: true }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  /** `runc create` of a busybox `sleep` (own bundle and cgroup), without conmon. */
  async function created(id: string): Promise<number> {
    ids.push(id);
    const bundle = path.join(dir, `bundle-${id}`);
    const config = buildOciConfig({
      namespace: 'default',
      name: `fifo-${id}`,
      spec: testSpec({ command: ['sleep', '1000'] }),
      specHash: 'x',
      rootfsPath: rootfs,
      cgroupsPath: `/acetate-fifo-test-${path.basename(dir)}-${id}`,
      hostNofileHard: 1024,
      swapAccounting: false,
    });
    await mkdir(bundle, { recursive: true });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(config));
    assert.equal(await run(runc.binary, ['--root', runc.root, 'create', '--bundle', bundle, '--pid-file', path.join(dir, `${id}.pid`), id]), 0);
    const st = await runc.stateFromRunc(id);
    assert.equal(st?.status, 'created');
    return st.pid;
  }

  it('runc then reports the container running, same pid, running the container command', async () => {
    const pid = await created('a');
    assert.equal(await startThroughExecFifo({ root: runc.root, id: 'a', initPid: pid }), true);
    const st = await runc.stateFromRunc('a');
    assert.equal(st?.status, 'running');
    assert.equal(st?.pid, pid);
    await waitFor(async () => (await readFile(`/proc/${pid}/cmdline`, 'utf8')) === 'sleep\x001000\x00', { what: 'init exec()s the command' });
    // And our own reading of runc's state agrees.
    assert.equal((await runc.state('a'))?.status, 'running');
  });

  it('answers false (use `runc start`) when there is no exec fifo: unknown or already started', async () => {
    assert.equal(await startThroughExecFifo({ root: runc.root, id: 'nope', initPid: 1 }), false);
    assert.equal(await startThroughExecFifo({ root: runc.root, id: 'a', initPid: 1 }), false, 'a is already running');
  });

  it('fails, without hanging, when the init died before it was started', async () => {
    const pid = await created('b');
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(pid)), { what: 'init gone' });
    await assert.rejects(startThroughExecFifo({ root: runc.root, id: 'b', initPid: pid, checkIntervalMs: 20 }), /already dead/);
  });

  it('RuncCli.start uses it with the init pid, and falls back to `runc start` without', async () => {
    const p1 = await created('c');
    await runc.start('c', { initPid: p1 });
    assert.equal((await runc.stateFromRunc('c'))?.status, 'running');
    const p2 = await created('d');
    await runc.start('d');
    assert.equal((await runc.stateFromRunc('d'))?.status, 'running');
    assert.notEqual(p1, p2);
  });
});
