/**
 * RuncRuntime against the real runc, conmon and kernel: start, limits in cgroup files, in-place
 * resize, stop with grace, restart, private area, logs, remove. Needs root.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseMountInfo } from '../../src/util/mounts.js';
import { nodeMountsBesideLayers } from '../support/disk.js';
import { RuncCli } from '../../src/runtime/runc/runc-cli.js';
import { isAlive } from '../../src/util/processes.js';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpStateForSuite, type TmpState } from '../support/tmp-state.js';
import { createTestContainer } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';
import type { NormalizedSpec } from '../../src/api/types.js';
import { exists } from '../../src/util/exists.js';

const MI = 2 ** 20;

async function cg(ctrl: string, rel: string, file: string): Promise<string> {
  return (await readFile(path.join('/sys/fs/cgroup', ctrl, rel, file), 'utf8')).trim();
}

describe('RuncRuntime lifecycle (real runc + conmon + overlayfs)', function () {
  this.timeout(60_000);
  let st: TmpState;
  tmpStateForSuite((s) => (st = s), { preflight: true });
  const create = (name: string, spec: Partial<NormalizedSpec>) => createTestContainer(st.runtime, name, spec);

  it('starts a host-template container: the process runs in the instance cgroup with its limits', async () => {
    await create('sleeper', { command: ['sleep'], args: ['1000'], resources: { cpuMillis: 500, memoryBytes: 64 * MI, pids: 32 } });
    const { pid } = await st.runtime.start('default/sleeper');
    assert.ok(await isAlive(pid), 'container process is alive');
    const rel = `${st.runtime.paths.cgroupParent}/default_sleeper`;
    const procCgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    assert.match(procCgroup, new RegExp(`:memory:${rel}$`, 'm'));
    assert.match(procCgroup, new RegExp(`:pids:${rel}$`, 'm'));
    assert.equal(await cg('memory', rel, 'memory.limit_in_bytes'), String(64 * MI));
    assert.equal(await cg('cpu', rel, 'cpu.cfs_quota_us'), '50000');
    assert.equal(await cg('cpu', rel, 'cpu.cfs_period_us'), '100000');
    assert.equal(await cg('pids', rel, 'pids.max'), '32');
    if (await exists(`/sys/fs/cgroup/memory/${rel}/memory.memsw.limit_in_bytes`)) {
      assert.equal(await cg('memory', rel, 'memory.memsw.limit_in_bytes'), String(64 * MI), 'no swap beyond the memory limit');
    }
    // Its / is the overlay over the host's /, with the private area as upper layer, mounted in the
    // container's own mount namespace: nothing of it is mounted on the node.
    const dir = path.join(st.dir, 'containers', 'default_sleeper');
    const root = parseMountInfo(await readFile(`/proc/${pid}/mountinfo`, 'utf8')).find((m) => m.mountPoint === '/');
    assert.equal(root?.fsType, 'overlay');
    assert.match(await readFile(`/proc/${pid}/mountinfo`, 'utf8'), new RegExp(` / / .* - overlay overlay .*upperdir=${dir}/upper`));
    assert.deepEqual(await nodeMountsBesideLayers(st.dir), [], 'nothing mounted on the node');
    // Started without `runc start` (through runc's exec fifo): runc itself agrees it runs.
    const fromRunc = await new RuncCli({ binary: 'runc', root: st.runtime.paths.runcRoot }).stateFromRunc('default_sleeper');
    assert.equal(fromRunc?.status, 'running');
    assert.equal(fromRunc?.pid, pid);
    // The reported pid is the container's PID 1: the init (catatonit), running the command.
    assert.equal(await readFile(`/proc/${pid}/cmdline`, 'utf8'), '/dev/.acetate-init\u0000--\u0000sleep\u00001000\u0000', 'the container init, not runc init');

    const list = await st.runtime.list();
    assert.equal(list.length, 1);
    const c = list[0]!;
    assert.equal(c.key, 'default/sleeper');
    assert.equal(c.id, 'default_sleeper');
    assert.equal(c.process.state, 'running');
    assert.equal(c.process.pid, pid);
    assert.ok(c.process.startedAt);
    assert.deepEqual(c.limits, { cpuMillis: 500, memoryBytes: 64 * MI, pids: 32 });
    assert.equal(c.restartCount, 0);
    assert.equal(c.applied.spec.command[0], 'sleep');
    assert.deepEqual((await st.runtime.get('default/sleeper'))?.process, c.process);

    // start() is idempotent on a running container.
    assert.deepEqual(await st.runtime.start('default/sleeper'), { pid });
    assert.equal(await st.runtime.get('default/nope'), undefined);
  });

  it('updateResources changes the cgroup files in place: same pid, limits read back, record updated', async () => {
    const before = await st.runtime.get('default/sleeper');
    const pid = before!.process.pid!;
    const rel = `${st.runtime.paths.cgroupParent}/default_sleeper`;

    const r = await st.runtime.updateResources('default/sleeper', { cpuMillis: 1500, memoryBytes: 128 * MI, pids: 64 });
    assert.deepEqual(r.deferred, []);
    assert.deepEqual(r.limits, { cpuMillis: 1500, memoryBytes: 128 * MI, pids: 64 });
    assert.equal(await cg('cpu', rel, 'cpu.cfs_quota_us'), '150000');
    assert.equal(await cg('memory', rel, 'memory.limit_in_bytes'), String(128 * MI));
    assert.equal(await cg('pids', rel, 'pids.max'), '64');
    const after = await st.runtime.get('default/sleeper');
    assert.equal(after!.process.pid, pid, 'same process');
    assert.deepEqual(after!.applied.spec.resources, { cpuMillis: 1500, memoryBytes: 128 * MI, pids: 64 });
    assert.notEqual(after!.applied.specHash, before!.applied.specHash);
    assert.equal(after!.appliedHashMatches, true, 'the rewritten record says the hash of its spec');
    // A record whose hash is not its spec's (an older acetate's, or edited by hand) is reported so (plan rewrites it).
    const recordFile = `${st.runtime.paths.containersDir}/default_sleeper/record.json`;
    const text = await readFile(recordFile, 'utf8');
    await writeFile(recordFile, text.replace(after!.applied.specHash, '0000000000000000'));
    assert.equal((await st.runtime.get('default/sleeper'))!.appliedHashMatches, false);
    await writeFile(recordFile, text);

    // A limit that is not page-aligned is rounded down by the kernel.
    const odd = await st.runtime.updateResources('default/sleeper', { cpuMillis: 1500, memoryBytes: 100 * MI + 1000, pids: 64 });
    assert.equal(odd.limits.memoryBytes, 100 * MI);

    // Removing the limits = unlimited.
    const none = await st.runtime.updateResources('default/sleeper', {});
    assert.deepEqual(none, { limits: {}, deferred: [] });
    assert.equal(await cg('cpu', rel, 'cpu.cfs_quota_us'), '-1');
    assert.equal(await cg('pids', rel, 'pids.max'), 'max');
    assert.ok(Number(await cg('memory', rel, 'memory.limit_in_bytes')) > 2 ** 60);
    assert.equal((await st.runtime.get('default/sleeper'))!.process.pid, pid);
  });

  it('stop: SIGTERM, forwarded by the init, ends it before the grace period; exit code recorded; overlay unmounted', async () => {
    // `sleep` under the init gets the SIGTERM (as PID 1 itself it would ignore it: init.test.ts).
    const pid = (await st.runtime.get('default/sleeper'))!.process.pid!;
    const t0 = Date.now();
    const { exitCode } = await st.runtime.stop('default/sleeper', { graceSeconds: 30 });
    const took = Date.now() - t0;
    assert.equal(exitCode, 143, '128 + SIGTERM, passed on by the init');
    // The bound tells "ended by the SIGTERM" from "killed after the grace period" with room for a
    // loaded machine (the stop also waits for conmon, runc delete and the unmount).
    assert.ok(took < 15_000, `did not wait the 30 s grace period (${took} ms)`);
    assert.equal(await isAlive(pid), false);
    assert.deepEqual(await nodeMountsBesideLayers(st.dir), []);
    const c = await st.runtime.get('default/sleeper');
    assert.equal(c!.process.state, 'absent');
    assert.equal(c!.process.exitCode, 143);
    assert.deepEqual(c!.limits, {});
    // stop() again is a no-op that still reports the last exit code.
    assert.deepEqual(await st.runtime.stop('default/sleeper', { graceSeconds: 1 }), { exitCode: 143 });
  });

  it('stop: a process that handles SIGTERM exits within the grace period with its own code', async () => {
    await create('graceful', { command: ['sh', '-c', 'trap "exit 7" TERM; echo ready; sleep 1000 & wait'] });
    await st.runtime.start('default/graceful');
    await waitFor('ready in the log', async () => (await st.runtime.logs('default/graceful')).includes('ready'));
    const t0 = Date.now();
    assert.deepEqual(await st.runtime.stop('default/graceful', { graceSeconds: 30 }), { exitCode: 7 });
    assert.ok(Date.now() - t0 < 10_000, 'did not wait for the whole grace period');
  });

  it('an exited process shows as exited with its code; start() runs it again and counts the restart', async () => {
    await create('short', { command: ['sh', '-c', 'echo run; exit 3'] });
    const first = await st.runtime.start('default/short');
    const exited = await waitFor('exit', async () => {
      const c = await st.runtime.get('default/short');
      return c?.process.state === 'exited' ? c : undefined;
    });
    assert.equal(exited.process.exitCode, 3);
    assert.ok(exited.process.finishedAt);
    assert.equal(exited.restartCount, 0);
    const second = await st.runtime.start('default/short');
    assert.notEqual(second.pid, first.pid);
    const again = await waitFor('second exit', async () => {
      const c = await st.runtime.get('default/short');
      return c?.process.state === 'exited' ? c : undefined;
    });
    assert.equal(again.restartCount, 1);
    assert.equal(again.process.exitCode, 3);
    // Each run its own log, as in Kubernetes: the current run's, and the one before (--previous).
    assert.equal((await st.runtime.logs('default/short')).split('\n').filter((l) => l === 'run').length, 1, 'the log is the last run');
    assert.equal((await st.runtime.logs('default/short', { previous: true })).split('\n').filter((l) => l === 'run').length, 1, 'the run before');
  });

  it('the private area survives stop/start and remove(keepPrivateArea: true), not remove(keepPrivateArea: false)', async () => {
    const spec = { command: ['sh', '-c', 'echo x >> /acetate-runs; echo wrote; sleep 1000'] };
    const upperFile = path.join(st.dir, 'containers', 'default_keeper', 'upper', 'acetate-runs');
    const runs = async () => (await readFile(upperFile, 'utf8')).split('\n').filter(Boolean).length;
    await create('keeper', spec);
    await st.runtime.start('default/keeper');
    await waitFor('first write', async () => (await runs()) === 1);
    assert.equal(await exists('/acetate-runs'), false, 'the host / (lower layer) is untouched');

    await st.runtime.stop('default/keeper', { graceSeconds: 0 });
    await st.runtime.start('default/keeper');
    await waitFor('second write', async () => (await runs()) === 2);
    assert.equal((await st.runtime.get('default/keeper'))!.restartCount, 1);

    await st.runtime.remove('default/keeper', { keepPrivateArea: true });
    assert.equal(await st.runtime.get('default/keeper'), undefined);
    assert.ok(!(await st.runtime.list()).some((c) => c.key === 'default/keeper'));
    assert.equal(await runs(), 2, 'private area kept');
    assert.deepEqual(await nodeMountsBesideLayers(st.dir), []);

    await create('keeper', spec);
    await st.runtime.start('default/keeper');
    await waitFor('third write (same private area)', async () => (await runs()) === 3);
    assert.equal((await st.runtime.get('default/keeper'))!.restartCount, 0, 'a new record starts counting again');

    await st.runtime.remove('default/keeper', { keepPrivateArea: false });
    assert.equal(await exists(path.join(st.dir, 'containers', 'default_keeper')), false);
  });

  it('logs() returns the lines the container wrote to stdout and stderr; tail keeps the last ones', async () => {
    await create('talker', { command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; printf "no newline"; sleep 1000'] });
    await st.runtime.start('default/talker');
    const text = await waitFor('all output', async () => {
      const t = await st.runtime.logs('default/talker');
      return t.includes('oops') && t.includes('no newline') ? t : undefined;
    });
    const lines = text.split('\n').filter(Boolean);
    for (const l of ['line1', 'line2', 'line3', 'line4', 'line5', 'oops', 'no newline']) assert.ok(lines.includes(l), `${l} in ${text}`);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('line')),
      ['line1', 'line2', 'line3', 'line4', 'line5'],
    );
    const tail = await st.runtime.logs('default/talker', { tail: 2 });
    assert.equal(tail.split('\n').filter(Boolean).length, 2);
    await assert.rejects(st.runtime.logs('default/none'), /not found/);
  });

  it('remove() cleans up everything and can be repeated', async () => {
    for (const c of await st.runtime.list()) {
      await st.runtime.remove(c.key, { keepPrivateArea: false });
      await st.runtime.remove(c.key, { keepPrivateArea: false });
    }
    await st.runtime.remove('default/never-existed', { keepPrivateArea: false });
    assert.deepEqual(await st.runtime.list(), []);
    await assertNoLeaks(st.dir);
  });
});
