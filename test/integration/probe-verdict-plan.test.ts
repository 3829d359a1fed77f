/**
 * A probe verdict is a fact only while the `acetate run` that made it lives (real runc, the real
 * CLI). The verdict in the status record is signed by its writer: signed by a live process,
 * `acetate plan` shows the pending kill; left by a loop that is gone (it died between the verdict
 * and the kill), `acetate plan` shows none and `acetate apply` kills nothing, as a freshly started
 * `acetate run` (its prober starts empty) would not.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { BIN, runCli } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { readStatusRecord, recordPath } from '../../src/controller/status-store.js';
import { normalizeProbe } from '../../src/api/probes.js';
import { probeHash } from '../../src/plan/probe-kill.js';
import { isAlive, readProcStat, type ProcessIdentity } from '../../src/util/processes.js';
import type { StatusRecord, UnhealthyRecord } from '../../src/contracts/status-record.js';

const KEY = 'default/sick';
/** Declared, never checked in this test (the verdict is the one a loop left). */
const LIVENESS = { exec: { command: ['/bin/true'] }, initialDelaySeconds: 3600 };

describe('a probe verdict holds only while the loop that made it runs (real runc)', function () {
  this.timeout(60_000);
  let dirs: CliDirs;
  let run: CliProcess | undefined;
  before(async () => {
    dirs = await cliDirs();
    await writeFile(path.join(dirs.dir, 'sick.yaml'), manifest('sick', { extra: `  livenessProbe: ${JSON.stringify(LIVENESS)}\n` }));
  });
  after(async () => {
    if (run?.running()) await run.stop();
    await dirs.cleanupAndAssertNoLeaks();
  });

  /** What `acetate plan -o json` plans for the container. */
  const planned = async (): Promise<Record<string, unknown>[]> => {
    const r = await runCli(['plan', '-f', dirs.dir, '-o', 'json'], { stateDir: dirs.stateDir, entry: BIN });
    assert.ok(r.code === 0 || r.code === 2, `plan: ${r.stdout}${r.stderr}`);
    return (JSON.parse(r.stdout) as { actions: Record<string, unknown>[] }).actions.filter((a) => a.key === KEY);
  };
  /** The status record with a liveness verdict about its running process, signed by `by`. */
  const leaveVerdict = async (rec: StatusRecord, by: ProcessIdentity): Promise<void> => {
    const unhealthy: UnhealthyRecord = {
      kind: 'liveness',
      pid: rec.actual!.pid!,
      startedAt: rec.actual!.startedAt!,
      message: 'Liveness probe failed 3 times: HTTP 500',
      probeHash: probeHash(normalizeProbe(LIVENESS)),
      by,
    };
    await writeFile(recordPath(dirs.stateDir, KEY), JSON.stringify({ ...rec, unhealthy }));
  };

  it('signed by a live process, plan shows the kill; left by a dead loop, plan shows none and apply kills nothing', async () => {
    run = new CliProcess(['run', '-f', dirs.dir, '--metrics-addr', '0'], { stateDir: dirs.stateDir, entry: BIN });
    const rec = await waitFor(
      'sick running under acetate run',
      async () => {
        const r = await readStatusRecord(dirs.stateDir, KEY);
        return r?.actual?.state === 'running' && r.actual.pid ? r : undefined;
      },
      { timeoutMs: 30_000, message: () => run!.stderr },
    );
    const runStat = await readProcStat(run!.pid!);
    assert.ok(runStat);
    const deadLoop = { pid: run!.pid!, startTicks: runStat.startTime };
    assert.equal((await run!.stop()).code, 0, run!.stderr);
    const pid = rec.actual!.pid!;

    // Another process that lives (standing for an `acetate run` beside `acetate plan`).
    const live = spawn('sleep', ['600'], { stdio: 'ignore' });
    await once(live, 'spawn');
    try {
      await leaveVerdict(rec, { pid: live.pid!, startTicks: (await readProcStat(live.pid!))!.startTime });
      assert.deepEqual(await planned(), [
        {
          kind: 'kill',
          key: KEY,
          reason: `Liveness probe failed 3 times: HTTP 500 (pid ${pid}); restartPolicy Always decides the restart`,
          probe: 'liveness',
          pid,
        },
      ]);
    } finally {
      live.kill('SIGKILL');
      await once(live, 'exit');
    }

    await leaveVerdict(rec, deadLoop);
    assert.deepEqual(await planned(), [], 'the loop that made it is gone: no kill');
    const applied = await runCli(['apply', '-f', dirs.dir], { stateDir: dirs.stateDir, entry: BIN });
    assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
    assert.doesNotMatch(applied.stdout, /kill/);
    assert.ok(await isAlive(pid), 'the process runs on, untouched');
  });
});
