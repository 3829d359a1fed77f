/**
 * Exits as events (issue 25): `acetate run` no longer relists every container every 2 s. conmon's
 * exit file is watched (inotify), a lost conmon is found by a signal-0 sweep, and what no event
 * tells is left to the slow resync. Real runc and conmon.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { readPid } from '../../src/runtime/runc/conmon.js';
import { ExitWatch } from '../../src/runtime/runc/process-watch.js';
import { containerIdOf, containerPaths } from '../../src/runtime/runc/paths.js';
import { LifelineBudget } from '../../src/runtime/runc/conmon-lifeline.js';
import { runCli } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { cliDirs, tmpStateForSuite, type CliDirs, type TmpState } from '../support/tmp-state.js';
import { createTestContainer } from '../support/test-spec.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

describe('ExitWatch on real containers', function () {
  this.timeout(60_000);
  let st: TmpState;
  tmpStateForSuite((s) => (st = s), { preflight: true });

  const conmonOf = async (name: string): Promise<number> => (await readPid(path.join(st.runtime.paths.runContainersDir, `default_${name}`, 'conmon.pid')))!;

  it('an exit is an event: the key is reported without any poll or list', async () => {
    await createTestContainer(st.runtime, 'ev', {});
    const { pid } = await st.runtime.start('default/ev');
    const seen: string[] = [];
    const w = st.runtime.watchProcesses((k) => seen.push(k));
    try {
      w.track('default/ev');
      w.track('default/not-there'); // no exit dir: nothing watched, nothing reported
      assert.equal((w as ExitWatch).size, 1);
      assert.equal(seen.length, 0, 'running: nothing to report');
      process.kill(pid, 'SIGKILL');
      await waitFor(() => seen.includes('default/ev'), { message: 'the exit reported' });
      const a = await st.runtime.get('default/ev');
      assert.equal(a?.process.state, 'exited');
      assert.equal(a?.process.exitCode, 137);
    } finally {
      w.close();
    }
  });

  it('list with keys reads only those containers (the light poll of bridge containers)', async () => {
    const some = await st.runtime.list({ keys: ['default/ev', 'default/not-there'] });
    assert.deepEqual(
      some.map((a) => a.key),
      ['default/ev'],
    );
    assert.equal(some[0]!.process.state, 'exited');
    assert.ok((await st.runtime.list()).length >= 1);
  });

  it('a lost conmon is an event (its FIFO reaches its end): reported with no sweep, and once', async () => {
    await createTestContainer(st.runtime, 'lf', {});
    await st.runtime.start('default/lf');
    const seen: string[] = [];
    const w = st.runtime.watchProcesses((k) => seen.push(k)) as ExitWatch;
    try {
      w.track('default/lf');
      w.track('default/lf'); // tracked again after each reconcile: still one lifeline
      assert.equal(w.lifelines, 1, 'the running conmon is watched through its FIFO');
      assert.deepEqual(w.sweep(), [], 'a watched conmon is not signalled by the sweep');
      assert.equal(seen.length, 0, 'supervised: nothing to report');
      process.kill(await conmonOf('lf'), 'SIGKILL');
      await waitFor(() => seen.includes('default/lf'), { message: 'conmon gone reported as an event' });
      assert.equal(w.lifelines, 0);
      assert.deepEqual(w.sweep(), [], 'not reported again by the sweep');
      assert.equal(seen.filter((k) => k === 'default/lf').length, 1, 'reported once');
      assert.match((await st.runtime.get('default/lf'))!.process.unsupervised!, /supervisor \(conmon\) is gone/);
    } finally {
      w.close();
    }
  });

  it('without a lifeline (none left in the fd budget), a lost conmon is found by the sweep (one signal 0 each), and reported once', async () => {
    await createTestContainer(st.runtime, 'sv', {});
    await st.runtime.start('default/sv');
    const w = new ExitWatch(
      (key) => containerPaths(st.runtime.paths, containerIdOf('default', key.split('/')[1]!)),
      () => undefined,
      new LifelineBudget(0),
    );
    try {
      w.track('default/sv');
      assert.equal(w.lifelines, 0);
      assert.deepEqual(w.sweep(), [], 'supervised: nothing');
      process.kill(await conmonOf('sv'), 'SIGKILL');
      await waitFor(() => w.sweep().includes('default/sv'), { message: 'the sweep to see conmon gone' });
      assert.deepEqual(w.sweep(), [], 'reported once');
      assert.match((await st.runtime.get('default/sv'))!.process.unsupervised!, /supervisor \(conmon\) is gone/);
    } finally {
      w.close();
    }
  });
});

describe('acetate run: exits noticed as events, the resync as the safety net (real runc)', function () {
  this.timeout(120_000);
  let dirs: CliDirs;
  let run: CliProcess | undefined;

  const describeJson = async (name: string): Promise<StatusRecord | undefined> => {
    const r = await runCli(['describe', name, '-o', 'json'], { stateDir: dirs.stateDir });
    return r.code === 0 ? (JSON.parse(r.stdout) as StatusRecord) : undefined;
  };
  const running = (name: string, minRestarts = 0) =>
    waitFor(
      async () => {
        const r = await describeJson(name);
        return r?.actual?.state === 'running' && (r.actual.restartCount ?? 0) >= minRestarts ? r : undefined;
      },
      { timeoutMs: 30_000, message: `${name} running with ${minRestarts} restart(s)` },
    );
  const startRun = (flags: string[]) =>
    new CliProcess(['run', '-f', dirs.dir, '--metrics-addr', '0', ...flags], { stateDir: dirs.stateDir, env: { ACETATE_CRASHLOOP_BASE_MS: '200' } });

  before(async () => {
    dirs = await cliDirs();
    await writeFile(path.join(dirs.dir, 'web.yaml'), manifest('web', { restartPolicy: 'Always' }));
    await writeFile(path.join(dirs.dir, 'job.yaml'), manifest('job', { script: 'sleep 1; exit 4', restartPolicy: 'Never' }));
  });

  afterEach(async () => {
    if (run?.running()) assert.equal((await run.stop()).code, 0, run.stderr);
    run = undefined;
  });

  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('with no poll and no resync in sight, a killed process is restarted (Always) and an exit recorded (Never)', async () => {
    run = startRun(['--process-poll', '0', '--resync', '1h']);
    const before = await running('web');
    process.kill(before.actual!.pid!, 'SIGKILL');
    const after = await running('web', 1);
    assert.notEqual(after.actual!.pid, before.actual!.pid);
    // describe may show the new pid before the loop has written its record of the restart (the
    // record is written after the start returns): the exit code it reports is waited for.
    await waitFor(async () => (await describeJson('web'))?.status.lastExitCode === 137, { timeoutMs: 30_000, message: 'exit 137 recorded by the loop' });
    const job = await waitFor(
      async () => {
        const r = await describeJson('job');
        return r?.actual?.state === 'exited' ? r : undefined;
      },
      { message: 'job exited' },
    );
    assert.equal(job.status.phase, 'Failed');
    assert.equal(job.status.lastExitCode, 4);
    assert.equal(job.actual?.restartCount, 0);
  });

  it('a container left running without its conmon: the end of its process is seen by the poll and it is restarted, with the resync an hour away', async () => {
    run = startRun(['--resync', '1h']);
    const before = await running('web');
    const restarts = before.actual!.restartCount ?? 0;
    process.kill((await readPid(path.join(dirs.stateDir, 'run', 'containers', 'default_web', 'conmon.pid')))!, 'SIGKILL');
    // The loop has seen it unsupervised (its reconcile tracked it), the process still running.
    await waitFor(async () => (await describeJson('web'))?.actual?.unsupervised !== undefined, { timeoutMs: 30_000, message: 'web shown unsupervised' });
    process.kill(before.actual!.pid!, 'SIGKILL');
    const after = await running('web', restarts + 1);
    assert.notEqual(after.actual!.pid, before.actual!.pid);
  });

  it('conmon killed first, so no exit file: its end (or the resync) gets the container restarted', async () => {
    run = startRun(['--process-poll', '0', '--resync', '2s']);
    const before = await running('web');
    const restarts = before.actual!.restartCount ?? 0;
    process.kill((await readPid(path.join(dirs.stateDir, 'run', 'containers', 'default_web', 'conmon.pid')))!, 'SIGKILL');
    process.kill(before.actual!.pid!, 'SIGKILL');
    const after = await running('web', restarts + 1);
    assert.notEqual(after.actual!.pid, before.actual!.pid);
  });
});
