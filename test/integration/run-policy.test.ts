/**
 * `acetate run` with processes that exit by themselves: restartPolicy Always / OnFailure / Never
 * on real runc, and a key declared in two files.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { unlink, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { isAlive } from '../support/proc.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest, type ManifestOptions } from '../support/manifest.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

/** Only memory is limited here; the script says how the process ends. */
function policyManifest(name: string, script: string, restartPolicy: ManifestOptions['restartPolicy'], memory = '32Mi'): string {
  return manifest(name, { script, restartPolicy, memory, cpu: null, pids: null });
}

describe('acetate run: restart policies and conflicts (real runc)', function () {
  this.timeout(90_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let run: CliProcess | undefined;

  const describeJson = async (name: string): Promise<StatusRecord | undefined> => {
    const r = await runCli(['describe', name, '-o', 'json'], { stateDir });
    return r.code === 0 ? (JSON.parse(r.stdout) as StatusRecord) : undefined;
  };
  const cond = (rec: StatusRecord | undefined, type: string) => rec?.status.conditions?.find((c) => c.type === type);

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'always.yaml'), policyManifest('always', 'sleep 0.2; exit 0', 'Always'));
    await writeFile(path.join(dir, 'onfailure.yaml'), policyManifest('onfailure', 'sleep 0.2; exit 3', 'OnFailure'));
    await writeFile(path.join(dir, 'done.yaml'), policyManifest('done', 'exit 0', 'OnFailure'));
    await writeFile(path.join(dir, 'never.yaml'), policyManifest('never', 'exit 5', 'Never'));
    await writeFile(path.join(dir, 'web.yaml'), policyManifest('web', 'exec sleep 100000', 'Always'));
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '0', '--resync', '2s', '--process-poll', '300ms'], {
      stateDir,
      env: { ACETATE_CRASHLOOP_BASE_MS: '300', ACETATE_CRASHLOOP_MAX_MS: '600' },
    });
  });

  after(async () => {
    if (run?.running()) assert.equal((await run.stop()).code, 0, run.stderr);
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('Always and OnFailure (non-zero exit) restart again and again, counting restarts and the exit code', async () => {
    for (const name of ['always', 'onfailure']) {
      const rec = await waitFor(
        async () => {
          const r = await describeJson(name);
          return r && (r.actual?.restartCount ?? 0) >= 2 ? r : undefined;
        },
        { timeoutMs: 30_000, message: `${name} restarted twice` },
      );
      assert.equal(rec.status.lastExitCode, name === 'always' ? 0 : 3);
    }
  });

  it('OnFailure after exit 0 and Never leave the container exited, with the reason', async () => {
    const done = await waitFor(
      async () => {
        const r = await describeJson('done');
        return r?.actual?.state === 'exited' && cond(r, 'Ready')?.reason === 'RestartPolicy' ? r : undefined;
      },
      { message: 'done exited, not restarted' },
    );
    assert.equal(done.status.phase, 'Stopped');
    assert.equal(done.actual?.restartCount, 0);
    const never = await waitFor(
      async () => {
        const r = await describeJson('never');
        return r?.actual?.state === 'exited' && cond(r, 'Ready')?.reason === 'RestartPolicy' ? r : undefined;
      },
      { message: 'never exited, not restarted' },
    );
    assert.equal(never.status.phase, 'Failed');
    assert.equal(never.status.lastExitCode, 5);
    assert.match(cond(never, 'Ready')!.message!, /exited with code 5; restartPolicy Never does not restart it/);
    assert.equal(never.actual?.restartCount, 0);
  });

  it('the same container in two files is a conflict: reported, the running container untouched', async () => {
    const web = await waitFor(
      async () => {
        const r = await describeJson('web');
        return r?.actual?.state === 'running' ? r : undefined;
      },
      { message: 'web running' },
    );
    await writeFile(path.join(dir, 'web-copy.yaml'), policyManifest('web', 'exec sleep 100000', 'Always', '64Mi'));
    const rec = await waitFor(
      async () => {
        const r = await describeJson('web');
        return cond(r, 'Synced')?.reason === 'Conflict' ? r : undefined;
      },
      { message: 'Synced=False Conflict' },
    );
    assert.match(cond(rec, 'Synced')!.message!, /web\.yaml|web-copy\.yaml/);
    assert.equal(rec.actual?.pid, web.actual?.pid);
    assert.ok(isAlive(web.actual!.pid!));
    await unlink(path.join(dir, 'web-copy.yaml'));
    await waitFor(async () => cond(await describeJson('web'), 'Synced')?.status === 'True', { message: 'conflict resolved' });
    assert.equal((await describeJson('web'))?.actual?.pid, web.actual?.pid);
  });
});
