/**
 * resources.disk through the CLI, as a user drives it: `acetate run` grows a disk live from a
 * saved file (same pid, more can be written, data kept), reports a shrink as ResizePending
 * Deferred / Infeasible, shows usage in `get -o wide`, `describe` and the metrics; `validate` and
 * `apply` name file, line and field for bad disk values.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { describeRecord } from '../support/describe-record.js';
import { CliProcess } from '../support/cli-process.js';
import { dfRoot, inContainer, MI } from '../support/disk.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { manifest } from '../support/manifest.js';
import { isAlive } from '../support/proc.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

function diskManifest(name: string, disk: string, extra = ''): string {
  return `${manifest(name, { cpu: null, memory: null, pids: null })}  resources:\n    disk: ${disk}\n${extra}`;
}

describe('resources.disk through the CLI (acetate run, get, describe, metrics, validate)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;
  let run: CliProcess | undefined;

  const describeJson = (name: string) => describeRecord(name, { stateDir });
  const resizePending = async (name: string) => (await describeJson(name)).status.conditions?.find((c) => c.type === 'ResizePending');

  before(async () => {
    stateDir = await makeTmpStateDir('acetate-diskcli-');
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-disk-manifests-'));
  });

  after(async () => {
    await run?.stop();
    await cleanupStateDir(stateDir);
    await assertNoLeaks(stateDir);
    await rm(dir, { recursive: true, force: true });
  });

  it('grows 64Mi → 128Mi under acetate run: same pid, 100 MiB now fits, earlier data intact', async () => {
    await writeFile(path.join(dir, 'web.yaml'), diskManifest('web', '64Mi'));
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '127.0.0.1:0', '--resync', '2s', '--process-poll', '500ms', '--debounce', '100ms'], {
      stateDir,
      env: { ACETATE_BACKOFF_BASE_MS: '200' },
    });
    const pid = await waitFor('web running', async () => (await describeJson('web').catch(() => undefined))?.actual?.pid, { timeoutMs: 30_000 });
    assert.ok((await dfRoot(pid)).size <= 64 * MI);
    await inContainer(pid, 'echo before-grow > /kept');
    const full = await inContainer(pid, 'dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo rc=$?; rm -f /fill');
    assert.match(full.out, /No space left on device/);

    await writeFile(path.join(dir, 'web.yaml'), diskManifest('web', '128Mi'));
    await waitFor('grown', async () => (await dfRoot(pid)).size > 120 * MI, { timeoutMs: 20_000 });
    assert.ok(isAlive(pid));
    assert.equal((await describeJson('web')).actual?.pid, pid, 'same pid');
    const w = await inContainer(pid, 'dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo rc=$?; cat /kept');
    assert.match(w.out, /rc=0/);
    assert.match(w.out, /before-grow/);

    // Usage everywhere a user looks.
    const rec = await waitFor('usage in the status', async () => {
      const r = await describeJson('web');
      return r.actual?.disk && r.actual.disk.usedBytes > 100 * MI ? r : undefined;
    });
    assert.equal(rec.actual!.disk!.sizeBytes, 128 * MI);
    const wide = await runCli(['get', '-o', 'wide'], { stateDir });
    assert.match(wide.stdout, /DISK/);
    assert.match(wide.stdout, /\d+(\.\d)?Mi\/\d+(\.\d)?Mi/);
    const text = await runCli(['describe', 'web'], { stateDir });
    assert.match(text.stdout, /Disk: +[\d.]+Mi used of [\d.]+Mi \(image 128Mi/);
    const url = await waitFor('url', () => run!.url);
    const metrics = await waitFor('disk metric', async () => {
      const m = await (await fetch(`${url}/metrics`)).text();
      return /acetate_container_disk_bytes\{container="default\/web",kind="used"\} \d{9}/.test(m) ? m : undefined;
    });
    assert.match(metrics, /acetate_container_disk_bytes\{container="default\/web",kind="total"\} \d+/);
  });

  it('reports a shrink as ResizePending Infeasible (never restarting for it, whatever the policy), then Deferred once the data fits, and applies it at the next restart', async () => {
    const pid = (await describeJson('web')).actual!.pid!;
    // resizePolicy RestartContainer for disk: a restart cannot make an infeasible shrink, so none is made.
    await writeFile(
      path.join(dir, 'web.yaml'),
      diskManifest('web', '64Mi', '  resizePolicy:\n    - { resourceName: disk, restartPolicy: RestartContainer }\n'),
    );
    const plan1 = await runCli(['plan', '-f', dir], { stateDir });
    assert.match(plan1.stdout, /resize .*disk 128Mi → 64Mi .*disk: Infeasible/);
    const c1 = await waitFor('Infeasible', async () => ((await resizePending('web'))?.reason === 'Infeasible' ? await resizePending('web') : undefined), {
      timeoutMs: 20_000,
    });
    assert.match(c1.message ?? '', /does not fit in 64Mi/);
    const url = await waitFor('url', () => run!.url);
    const resyncs = async () => Number(/^acetate_resyncs_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);
    const from = await resyncs();
    await waitFor('three more passes over the node', async () => (await resyncs()) >= from + 3, { timeoutMs: 30_000 });
    const still = await describeJson('web');
    assert.equal(still.actual?.pid, pid, 'the same process: no restart for an infeasible shrink');
    assert.equal(still.actual?.restartCount, 0);
    // Back to the default policy: once the data fits, the shrink waits for the next restart.
    await writeFile(path.join(dir, 'web.yaml'), diskManifest('web', '64Mi'));
    await inContainer(pid, 'rm /fill; sync');
    // XFS frees an unlinked file's blocks in the background (inodegc): wait until statfs shows it.
    await waitFor('the space freed', async () => (await dfRoot(pid)).used < 30 * MI);
    const plan2 = await runCli(['plan', '-f', dir], { stateDir });
    assert.match(plan2.stdout, /disk: Deferred to the next restart/);
    // The loop retries deferred resizes every 15 s; a restart of the process applies it.
    process.kill(pid, 'SIGKILL');
    const pid2 = await waitFor(
      'restarted',
      async () => {
        const r = await describeJson('web');
        return r.actual?.pid !== pid && r.actual?.state === 'running' ? r.actual.pid : undefined;
      },
      { timeoutMs: 30_000 },
    );
    await waitFor('64Mi in force', async () => (await dfRoot(pid2)).size <= 64 * MI, { timeoutMs: 20_000 });
    assert.match((await inContainer(pid2, 'cat /kept')).out, /before-grow/);
    await waitFor('no resize pending', async () => (await resizePending('web'))?.status === 'False', { timeoutMs: 30_000 });
  });

  it('names file, line and field for a disk too small, not a quantity, or larger than the node', async () => {
    const bad = await mkdtemp(path.join(os.tmpdir(), 'acetate-disk-bad-'));
    try {
      await writeFile(path.join(bad, 'small.yaml'), diskManifest('small', '8Mi'));
      await writeFile(path.join(bad, 'word.yaml'), diskManifest('word', 'lots'));
      const v = await runCli(['validate', bad], { stateDir });
      assert.equal(v.code, 1);
      assert.match(v.stdout + v.stderr, /small\.yaml:\d+: spec\.resources\.disk: '8Mi' is below the smallest disk .*16Mi/);
      assert.match(v.stdout + v.stderr, /word\.yaml:\d+: spec\.resources\.disk: 'lots' is not a quantity such as 2Gi/);
      // Refused (not only warned about) at the start: the state dir's filesystem cannot hold it.
      const other = await makeTmpStateDir('acetate-diskhuge-');
      try {
        const hugeDir = path.join(bad, 'huge');
        await mkdir(hugeDir);
        await writeFile(path.join(hugeDir, 'huge.yaml'), diskManifest('huge', '4Pi'));
        const a = await runCli(['apply', '-f', hugeDir], { stateDir: other });
        assert.equal(a.code, 1, a.stdout + a.stderr);
        assert.match(a.stdout + a.stderr, /huge\.yaml:\d+: spec\.resources\.disk: 4Pi is more than the state dir's filesystem can hold: .*refused/);
      } finally {
        await cleanupStateDir(other);
        await assertNoLeaks(other);
      }
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });
});
