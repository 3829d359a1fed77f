/**
 * A supervisor killed, or a run-dir file removed by hand, under a running container (issue 10):
 * real runc and conmon. The process is left running and reported unsupervised; a run that ends
 * unseen has an unknown exit code, and plan never runs an OnFailure/Never container again then.
 * Also the OOM killer's verdict (OOMKilled) from the cgroup.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { plan } from '../../src/plan/plan.js';
import { readPid } from '../../src/runtime/runc/conmon.js';
import { isAlive } from '../../src/util/processes.js';
import type { NormalizedSpec } from '../../src/api/types.js';
import { tmpStateForSuite, type TmpState } from '../support/tmp-state.js';
import { createTestContainer, FILE_SOURCE } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

describe('RuncRuntime: supervision lost, exit codes unknown, OOM (real runc + conmon)', function () {
  this.timeout(60_000);
  let st: TmpState;

  tmpStateForSuite((s) => (st = s), { preflight: true });

  const start = async (name: string, spec: Partial<NormalizedSpec>): Promise<number> => {
    await createTestContainer(st.runtime, name, spec);
    return (await st.runtime.start(`default/${name}`)).pid;
  };
  const runDirOf = (name: string): string => path.join(st.runtime.paths.runContainersDir, `default_${name}`);
  const actionsFor = async (name: string, spec: Partial<NormalizedSpec>): Promise<string[]> => {
    const key = `default/${name}`;
    const actual = await st.runtime.get(key);
    const desired = { key, namespace: 'default', name, spec: { ...actual!.applied.spec, ...spec }, source: FILE_SOURCE };
    // A changed policy also rewrites the record (configure): only what touches the process counts here.
    return plan({ desired: new Map([[key, desired]]), actual: new Map([[key, actual!]]), complete: true })
      .actions.map((a) => a.kind)
      .filter((k) => k !== 'configure');
  };

  it('conmon SIGKILLed: the process keeps running, same pid, reported unsupervised', async () => {
    const pid = await start('svc', {});
    assert.equal((await st.runtime.get('default/svc'))!.process.unsupervised, undefined);
    process.kill((await readPid(path.join(runDirOf('svc'), 'conmon.pid')))!, 'SIGKILL');
    const a = await waitFor(
      async () => {
        const got = await st.runtime.get('default/svc');
        return got?.process.unsupervised ? got : undefined;
      },
      { what: 'the lost supervisor to show' },
    );
    assert.equal(a.process.state, 'running');
    assert.equal(a.process.pid, pid);
    assert.match(a.process.unsupervised!, /supervisor \(conmon\) is gone/);
    assert.ok(await isAlive(pid));
    assert.deepEqual(await actionsFor('svc', {}), [], 'a running, unsupervised container is left running');
  });

  it('an OnFailure job that ends while unsupervised: exit code unknown, not run again; Always is restarted', async () => {
    await start('job', { command: ['/bin/sh', '-c', 'sleep 1; exit 0'], restartPolicy: 'OnFailure' });
    process.kill((await readPid(path.join(runDirOf('job'), 'conmon.pid')))!, 'SIGKILL');
    const a = await waitFor(
      async () => {
        const got = await st.runtime.get('default/job');
        return got?.process.state === 'exited' ? got : undefined;
      },
      { what: 'the job to end' },
    );
    assert.equal(a.process.exitCode, undefined);
    assert.match(a.process.unsupervised!, /exit code unknown/);
    assert.deepEqual(await actionsFor('job', { restartPolicy: 'OnFailure' }), []);
    assert.deepEqual(await actionsFor('job', { restartPolicy: 'Never' }), []);
    assert.deepEqual(await actionsFor('job', { restartPolicy: 'Always' }), ['start']);
  });

  it("runc's state removed by hand: the process is still seen (no second one), and its unseen end is an unknown exit", async () => {
    const pid = await start('lost', { restartPolicy: 'OnFailure' });
    await rm(path.join(st.runtime.paths.runcRoot, 'default_lost'), { recursive: true, force: true });
    const a = (await st.runtime.get('default/lost'))!;
    assert.equal(a.process.state, 'running');
    assert.equal(a.process.pid, pid);
    assert.match(a.process.unsupervised!, /runc has no state/);
    assert.deepEqual(await actionsFor('lost', {}), [], 'no second process is started');
    process.kill(pid, 'SIGKILL');
    const b = await waitFor(
      async () => {
        const got = await st.runtime.get('default/lost');
        return got?.process.state === 'exited' ? got : undefined;
      },
      { what: 'the end to show' },
    );
    assert.equal(b.process.exitCode, undefined);
    assert.deepEqual(await actionsFor('lost', { restartPolicy: 'OnFailure' }), [], 'OnFailure: may have succeeded, not run again');
    // Desired Stopped finishes it once: the unseen end is recorded, nothing more to do.
    assert.deepEqual(await actionsFor('lost', { state: 'Stopped' }), ['stop']);
    await st.runtime.stop('default/lost', { graceSeconds: 0 });
    assert.equal((await st.runtime.get('default/lost'))!.process.state, 'absent');
  });

  it("conmon's exit dir and pid files removed by hand: the lock holder puts them back, so the exit code is still recorded", async () => {
    const pid = await start('files', {});
    const run = runDirOf('files');
    await rm(path.join(run, 'exits'), { recursive: true, force: true });
    await rm(path.join(run, 'conmon.pid'), { force: true });
    await rm(path.join(run, 'pid'), { force: true });
    const a = (await st.runtime.get('default/files'))!; // st.runtime holds the lock's role (sweepLeftovers)
    assert.equal(a.process.unsupervised, undefined);
    assert.ok((await readPid(path.join(run, 'conmon.pid'))) !== undefined, 'conmon.pid put back');
    assert.equal(await readPid(path.join(run, 'pid')), pid);
    process.kill(pid, 'SIGKILL');
    const b = await waitFor(
      async () => {
        const got = await st.runtime.get('default/files');
        return got?.process.state === 'exited' && got.process.exitCode !== undefined ? got : undefined;
      },
      { what: 'the exit code to be recorded' },
    );
    assert.equal(b.process.exitCode, 137);
    assert.equal(b.process.unsupervised, undefined);
  });

  it('a process killed by the memory limit: exit 137, reason OOMKilled, kept after the stop', async () => {
    // dd (the container's init) fills a 64 MiB buffer: over the 16 MiB limit, the kernel's OOM killer kills it.
    await start('oom', {
      command: ['/bin/sh', '-c', 'exec dd if=/dev/zero of=/dev/null bs=64M count=1'],
      resources: { memoryBytes: 16 * 2 ** 20 },
      restartPolicy: 'Never',
    });
    const a = await waitFor(
      async () => {
        const got = await st.runtime.get('default/oom');
        return got?.process.state === 'exited' ? got : undefined;
      },
      { what: 'the OOM kill', timeoutMs: 20_000 },
    );
    assert.equal(
      a.process.exitCode,
      137,
      `exit ${a.process.exitCode}; log: ${await readFile(path.join(st.runtime.paths.containersDir, 'default_oom', 'container.log'), 'utf8').catch(() => '')}`,
    );
    assert.equal(a.process.reason, 'OOMKilled');
    await st.runtime.stop('default/oom', { graceSeconds: 0 });
    const b = (await st.runtime.get('default/oom'))!;
    assert.equal(b.process.exitCode, 137);
    assert.equal(b.process.reason, 'OOMKilled');
  });
});
