/**
 * A supervisor (conmon) SIGKILLed under `acetate run` (issue 10): detected within the process
 * poll and reported (Supervised=False), a succeeded OnFailure job is not run again, a long-running
 * container keeps exactly one live process; and a running container moved into a `kind: List`
 * needs nothing done.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { runCli, waitFor, writeAtomic } from './lib.js';
import { readProcStat } from '../../src/util/processes.js';
import { cgroupMembersOf, conmonPidOf, countingManifest, makeBed, startLoop, startsOf, teardownBed, writeCounting, type Bed } from './concurrency.js';

const POLL_MS = 1000;
const log = (m: string): void => console.log(`      ${m}`);

interface Described {
  status: { conditions?: { type: string; status: string; reason?: string }[]; phase?: string };
  actual?: { pid?: number; state: string; unsupervised?: string; exitCode?: number };
}

async function describe_(b: Bed, name: string): Promise<Described> {
  const r = await runCli(['describe', name, '-o', 'json'], { stateDir: b.stateDir });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Described;
}

const supervised = (d: Described): string | undefined => d.status.conditions?.find((c) => c.type === 'Supervised' && c.status === 'False')?.reason;

describe('chaos: supervisor killed under acetate run', function () {
  this.timeout(300_000);
  let b: Bed | undefined;
  afterEach(async () => {
    await teardownBed(b);
    b = undefined;
  });

  it('SIGKILL of conmon: detected within the poll, the succeeded OnFailure job is not run again, the service keeps one process', async () => {
    b = await makeBed();
    await writeAtomic(path.join(b.dir, 'job.yaml'), countingManifest('job', { script: 'sleep 4; exit 0', restartPolicy: 'OnFailure' }));
    await writeCounting(b.dir, ['svc']);
    await startLoop(b);
    const bed = b;
    await waitFor(async () => (await startsOf(bed.stateDir, 'job')) === 1 && (await startsOf(bed.stateDir, 'svc')) === 1, {
      what: 'both started',
      timeoutMs: 30_000,
    });
    const svcPid = (await describe_(b, 'svc')).actual?.pid;
    assert.ok(svcPid);
    const t0 = performance.now();
    for (const n of ['job', 'svc']) process.kill(await conmonPidOf(b.stateDir, n), 'SIGKILL');
    // The loop notices at its next poll and writes the condition.
    await waitFor(async () => supervised(await describe_(bed, 'svc')) === 'SupervisorLost', {
      what: 'Supervised=False on svc',
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    const detectedMs = Math.round(performance.now() - t0);
    log(`supervisor loss reported by the loop ${detectedMs} ms after the SIGKILL (process poll ${POLL_MS} ms)`);
    assert.ok(detectedMs < POLL_MS + 1500, `reported after ${detectedMs} ms`);
    // The job ends (exit 0, unseen): its exit code is unknown, and it must not run again.
    await waitFor(async () => supervised(await describe_(bed, 'job')) === 'ExitCodeUnknown', {
      what: 'the job to end, reported',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const job = await describe_(b, 'job');
    assert.equal(job.actual?.state, 'exited');
    assert.equal(job.status.phase, 'Unknown');
    // Three more polls and a resync's worth of reconciles: still exactly one run.
    await runCli(['get'], { stateDir: b.stateDir });
    await new Promise((r) => setTimeout(r, 3 * POLL_MS)); // nothing to wait for: asserting that nothing happens
    assert.equal(await startsOf(b.stateDir, 'job'), 1, 'the job ran again');
    // The service: same pid (its init), alive, not restarted: its cgroup holds the init and one
    // service process, the init's child (a second run would be a second child or a new init).
    const svc = await describe_(b, 'svc');
    assert.equal(svc.actual?.pid, svcPid);
    const members = await cgroupMembersOf(b.stateDir, 'svc');
    assert.ok(members.includes(svcPid), `the init ${svcPid} is in the cgroup: ${members.join(', ')}`);
    const others = members.filter((p) => p !== svcPid);
    assert.equal(others.length, 1, `one service process besides the init: ${members.join(', ')}`);
    assert.equal((await readProcStat(others[0]!))?.ppid, svcPid, "the service process is the init's child");
    assert.equal(await startsOf(b.stateDir, 'svc'), 1);
  });

  it('a running container moved into a kind: List: plan shows nothing to do, apply keeps its process', async () => {
    b = await makeBed();
    await writeCounting(b.dir, ['a', 'b']);
    const first = await runCli(['apply', '-f', b.dir], { stateDir: b.stateDir });
    assert.equal(first.code, 0, first.stderr);
    const pids = await Promise.all(['a', 'b'].map(async (n) => (await describe_(b!, n)).actual?.pid));
    const indent = (t: string): string =>
      t
        .trimEnd()
        .split('\n')
        .map((l, i) => `${i === 0 ? '- ' : '  '}${l}`)
        .join('\n');
    await writeAtomic(path.join(b.dir, 'list.yaml'), `apiVersion: v1\nkind: List\nitems:\n${['a', 'b'].map((n) => indent(countingManifest(n))).join('\n')}\n`);
    for (const n of ['a', 'b']) await rm(path.join(b.dir, `${n}.yaml`));
    const plan = await runCli(['plan', '-f', b.dir], { stateDir: b.stateDir });
    assert.equal(plan.code, 0, `plan wants changes:\n${plan.stdout}\n${plan.stderr}`);
    assert.doesNotMatch(plan.stdout, /destroy|create/);
    const apply = await runCli(['apply', '-f', b.dir], { stateDir: b.stateDir });
    assert.equal(apply.code, 0, apply.stderr);
    assert.deepEqual(await Promise.all(['a', 'b'].map(async (n) => (await describe_(b!, n)).actual?.pid)), pids);
  });
});
