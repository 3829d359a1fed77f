/**
 * `acetate run` end to end: the real CLI as a child process, real runc containers, real files.
 * One loop runs through a user's day: write a file, resize, atomic save, break and fix YAML,
 * drift by hand, a crashing process, a restart of acetate itself, a deleted file.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { describeRecord } from '../support/describe-record.js';
import { CliProcess, quickRunFlags, type LogLine } from '../support/cli-process.js';
import { cgroupValue, isAlive } from '../support/proc.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { findBinary } from '../../src/util/find-binary.js';
import { exec } from '../../src/util/exec.js';
import { flatContainers } from '../support/get.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const MI = 1024 * 1024;

/** One `acetate run` child process over the manifests of dir, with quick timings. */
class Acetate extends CliProcess {
  constructor(stateDir: string, dir: string) {
    super(['run', '-f', dir, ...quickRunFlags(), '--log-level', 'debug'], {
      stateDir,
      env: { ACETATE_CRASHLOOP_BASE_MS: '1500', ACETATE_CRASHLOOP_MAX_MS: '3000', ACETATE_BACKOFF_BASE_MS: '200' },
    });
  }

  /** Actions logged for a container since line index `from`. */
  actions(key: string, from = 0): LogLine[] {
    return this.lines.slice(from).filter((l) => l.container === key && typeof l.action === 'string' && typeof l.durationMs === 'number');
  }

  async ready(): Promise<void> {
    await waitFor(() => this.url, { timeoutMs: 20_000, message: () => `the metrics address in the log (stderr: ${this.stderr})` });
    await waitFor(async () => (await fetch(`${this.url}/readyz`)).status === 200, { timeoutMs: 30_000, message: '/readyz' });
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.url}/metrics`)).text();
  }
}

describe('acetate run (real runc, real files)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let acetate: Acetate | undefined;

  const describeJson = (name: string) => describeRecord(name, { stateDir });
  const cond = (rec: StatusRecord, type: string) => rec.status.conditions?.find((c) => c.type === type);
  /** The running pid of a container, once Ready. */
  const runningPid = async (name: string): Promise<number> =>
    waitFor(
      async () => {
        const rec = await describeJson(name);
        return rec.actual?.state === 'running' && cond(rec, 'Ready')?.status === 'True' ? rec.actual.pid : undefined;
      },
      { timeoutMs: 20_000, message: `${name} running` },
    );
  const memLimit = (pid: number) => cgroupValue(pid, 'memory', 'memory.limit_in_bytes');

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
  });

  after(async () => {
    if (acetate) await acetate.stop();
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('starts, answers /healthz and /readyz, and creates the container of a new file', async () => {
    await writeFile(path.join(dir, 'keep.yaml'), manifest('keep'));
    acetate = new Acetate(stateDir, dir);
    await acetate.ready();
    assert.equal((await fetch(`${acetate.url}/healthz`)).status, 200);
    assert.ok(new URL(acetate.url!).hostname === '127.0.0.1');
    await runningPid('keep');
    await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
    const pid = await runningPid('web');
    assert.ok(isAlive(pid));
    assert.equal(await memLimit(pid), String(64 * MI));
    const rec = await describeJson('web');
    assert.equal(rec.status.phase, 'Running');
    assert.equal(cond(rec, 'Synced')?.status, 'True');
    assert.equal(rec.source?.kind === 'file' && rec.source.file, path.join(dir, 'web.yaml'));
    // describe can show a container running before the loop has counted its create: waited for.
    const m = await waitFor(
      async () => {
        const t = await acetate!.metrics();
        return /acetate_actions_total\{kind="create",outcome="created"\} 2/.test(t) && /acetate_containers\{phase="Running"\} 2/.test(t) ? t : undefined;
      },
      { message: 'both creates counted and published' },
    );
    assert.match(m, /acetate_reconciles_total\{result="changed"\} \d+/);
  });

  it('resizes in place when memory is edited: same pid, new cgroup limit', async () => {
    const pid = await runningPid('web');
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { memory: '128Mi' }));
    await waitFor(async () => (await memLimit(pid)) === String(128 * MI), { message: 'memory 128Mi in the cgroup' });
    assert.ok(isAlive(pid));
    assert.equal(await runningPid('web'), pid, 'same process');
  });

  it('an atomic save (temp file + rename) is one change and one reconcile', async () => {
    const a = acetate!;
    const pid = await runningPid('web');
    const from = a.lines.length;
    const tmp = path.join(dir, '.web.yaml.swx');
    await writeFile(tmp, manifest('web', { memory: '128Mi', cpu: '250m' }));
    await rename(tmp, path.join(dir, 'web.yaml'));
    await waitFor(async () => (await cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us')) === '25000', { message: 'cpu 250m in the cgroup' });
    // Barrier: a later change of another file, so every event of the save has been delivered.
    await writeFile(path.join(dir, 'keep.yaml'), manifest('keep', { memory: '32Mi' }));
    await waitFor(() => a.actions('default/keep', from).some((l) => l.action === 'resize'), { message: 'keep resized' });
    const changes = a.lines.slice(from).filter((l) => l.message === 'source changed' && l.keys?.includes('default/web'));
    assert.equal(changes.length, 1, JSON.stringify(changes));
    const resizes = a.actions('default/web', from);
    assert.deepEqual(
      resizes.map((l) => `${l.action}:${l.result}`),
      ['resize:resized'],
    );
  });

  it('a broken file leaves the container untouched and reports the error (describe, get, /metrics); fixing it converges', async () => {
    const a = acetate!;
    const pid = await runningPid('web');
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { memory: '256Mi' }).replace('kind: Container', 'kind: [Container'));
    const rec = await waitFor(
      async () => {
        const r = await describeJson('web');
        return cond(r, 'Synced')?.reason === 'InvalidManifest' ? r : undefined;
      },
      { message: 'Synced=False InvalidManifest' },
    );
    assert.match(cond(rec, 'Synced')!.message!, /web\.yaml:\d+: YAML syntax error/);
    assert.equal(rec.status.phase, 'Running');
    assert.equal(await memLimit(pid), String(128 * MI), 'limits untouched');
    assert.equal(rec.actual?.pid, pid);
    const text = await runCli(['describe', 'web'], { stateDir });
    assert.match(text.stdout, /Synced\s+False\s+InvalidManifest/);
    assert.match(text.stdout, /Problems:\n\s+invalid: .*web\.yaml:\d+: YAML syntax error/);
    const m = await a.metrics();
    assert.match(m, /acetate_invalid_manifests 1/);
    assert.match(m, new RegExp(`acetate_manifest_problems\\{origin="${path.join(dir, 'web.yaml').replace(/[.]/g, '\\.')}",kind="invalid"\\} 1`));
    assert.ok(
      a.lines.some((l) => l.level === 'warn' && /manifest problem: .*web\.yaml/.test(l.message)),
      'logged',
    );
    // `acetate get` lists the container, still running as last applied.
    const got = await runCli(['get', '-o', 'json'], { stateDir });
    assert.equal(got.code, 0, got.stderr);
    const listed = { items: flatContainers(got.stdout) };
    const web = listed.items.find((c) => c.name === 'web' && c.pid === pid);
    assert.ok(web, 'web listed with the same pid');
    assert.equal(web.conditions?.find((c) => c.type === 'Synced')?.reason, 'InvalidManifest');
    assert.match(got.stderr, /manifest problem: .*YAML syntax error/, 'problems on stderr, the objects on stdout');
    const table = await runCli(['get'], { stateDir });
    assert.match(table.stdout, /^web\s+Running\s+\d+.*InvalidManifest/m);
    assert.match(table.stdout, /Manifest errors reported by acetate run.*\n\s+.*web\.yaml:\d+: YAML syntax error/);

    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { memory: '96Mi', cpu: '250m' }));
    await waitFor(async () => cond(await describeJson('web'), 'Synced')?.status === 'True', { message: 'Synced again' });
    assert.equal(await memLimit(pid), String(96 * MI));
    assert.match(await a.metrics(), /acetate_invalid_manifests 0/);
  });

  it('restores limits changed by hand with runc update (drift repair by the periodic resync)', async () => {
    const pid = await runningPid('web');
    const runc = await findBinary('runc');
    assert.ok(runc);
    const from = acetate!.lines.length;
    await exec(runc, ['--root', instancePaths(stateDir).runcRoot, 'update', '--memory', String(48 * MI), 'default_web']);
    // Not sampled: the 2 s resync may put 96Mi back at any moment; the repair is seen as an action.
    await waitFor(() => acetate!.actions('default/web', from).some((l) => l.action === 'resize'), { message: 'drift repaired by a resize' });
    await waitFor(async () => (await memLimit(pid)) === String(96 * MI), { message: 'memory restored to 96Mi' });
    assert.equal(await runningPid('web'), pid);
  });

  it('restarts a killed process per restartPolicy, with crash-loop back-off', async () => {
    const a = acetate!;
    const from = a.lines.length;
    const pid1 = await runningPid('web');
    let killedAt = Date.now();
    process.kill(pid1, 'SIGKILL');
    const pid2 = await waitFor(
      async () => {
        const p = await runningPid('web');
        return p !== pid1 ? p : undefined;
      },
      { message: 'restarted', timeoutMs: 20_000 },
    );
    assert.ok(Date.now() - killedAt >= 1400, `restarted after ${Date.now() - killedAt} ms, before the 1.5 s back-off`);
    let rec = await describeJson('web');
    assert.equal(rec.actual?.restartCount, 1);
    assert.equal(rec.status.lastExitCode, 137);
    // Again: the second restart waits twice as long (3 s with the test base of 1.5 s).
    killedAt = Date.now();
    process.kill(pid2, 'SIGKILL');
    await waitFor(
      async () => {
        const p = await runningPid('web');
        return p !== pid2 ? p : undefined;
      },
      { message: 'restarted again', timeoutMs: 20_000 },
    );
    assert.ok(Date.now() - killedAt >= 2900, `restarted after ${Date.now() - killedAt} ms, before the 3 s back-off`);
    rec = await describeJson('web');
    assert.equal(rec.actual?.restartCount, 2);
    const backoffs = a.lines.slice(from).filter((l) => l.container === 'default/web' && /back-off \S+ restarting failed container/.test(l.message));
    // The second start is logged and counted after it returns, which describe may beat: waited for.
    await waitFor(() => a.actions('default/web', from).filter((l) => l.action === 'start').length >= 2, { message: 'both restarts logged' });
    const restarts = a.actions('default/web', from).filter((l) => l.action === 'start');
    assert.equal(restarts.length, 2, JSON.stringify(restarts));
    assert.ok(backoffs.length >= 1, 'a back-off was logged');
    await waitFor(async () => /acetate_container_restarts_total 2/.test(await a.metrics()), { message: 'the restarts counted' });
  });

  it('SIGTERM: exits 0, containers keep running; a new acetate adopts them without restarting', async () => {
    const pid = await runningPid('web');
    const keepPid = await runningPid('keep');
    const { code } = await acetate!.stop();
    assert.equal(code, 0, acetate!.stderr);
    assert.ok(isAlive(pid) && isAlive(keepPid), 'containers keep running');
    acetate = new Acetate(stateDir, dir);
    await acetate.ready();
    // Let a resync or two pass.
    await waitFor(() => acetate!.lines.filter((l) => l.message === 'reconciled' && l.container === 'default/web').length >= 2, { message: 'two reconciles' });
    assert.deepEqual(acetate.actions('default/web'), [], 'no action on adoption');
    assert.deepEqual(acetate.actions('default/keep'), []);
    assert.equal(await runningPid('web'), pid);
  });

  it('deleting a file destroys its containers; an emptied directory destroys nothing', async () => {
    const pid = await runningPid('web');
    await unlink(path.join(dir, 'web.yaml'));
    await waitFor(() => !isAlive(pid), { message: 'web process gone' });
    await waitFor(async () => (await runCli(['describe', 'web'], { stateDir })).code === 1, { message: 'web status removed' });
    const keepPid = await runningPid('keep');
    const from = acetate!.lines.length;
    await unlink(path.join(dir, 'keep.yaml'));
    await waitFor(() => acetate!.lines.slice(from).some((l) => l.message === 'source changed'), { message: 'the change seen' });
    await waitFor(() => acetate!.lines.slice(from).filter((l) => l.message === 'reconciled' && l.container === 'default/keep').length >= 2, {
      message: 'keep reconciled',
    });
    assert.ok(isAlive(keepPid), 'not destroyed: the directory is empty (no --allow-empty)');
    const rec = await describeJson('keep');
    assert.match(cond(rec, 'Synced')?.message ?? '', /not destroying: no manifest files/);
    const { code } = await acetate!.stop();
    assert.equal(code, 0);
    acetate = undefined;
  });
});
