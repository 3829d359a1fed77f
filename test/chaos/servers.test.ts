/**
 * Faults around what makes containers behave like small servers (issue 16): many hanging probes
 * must not slow the loop, a probe whose binary is missing, exec into a container being destroyed,
 * `logs -f` while the container is destroyed. Real containers under `acetate run`; after each case
 * nothing may leak (processes, exec pid files, mounts, cgroups, runc state).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { assertNoCrash, runCli, spawnCli, since, waitFor, type RunningCli } from './lib.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { cgroupValue } from '../support/proc.js';
import { flatContainers } from '../support/get.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const MI = 1024 * 1024;
const HANGERS = Number(process.env.ACETATE_CHAOS_HANGERS ?? 20);
/** Checks in flight are one per probe at most (the prober's workers): two probes per container here. */
const PROBES_PER_CONTAINER = 2;

/** Processes on the node whose command line is exactly argv. */
async function processesRunning(argv: string[]): Promise<number[]> {
  const want = `${argv.join('\0')}\0`;
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (/^\d+$/.test(e) && (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')) === want) out.push(Number(e));
  }
  return out;
}

describe('chaos: servers (probes, exec, logs -f)', function () {
  this.timeout(600_000);
  let stateDir: string;
  let dir: string;
  let loop: RunningCli;

  const ready = async (name: string) => {
    const r = await runCli(['describe', name, '-o', 'json'], { stateDir });
    return (JSON.parse(r.stdout) as StatusRecord).status.conditions?.find((c) => c.type === 'Ready');
  };
  const pidOf = async (name: string) => flatContainers((await runCli(['get', name, '-o', 'json'], { stateDir })).stdout)[0]?.pid;

  before(async () => {
    stateDir = await makeTmpStateDir();
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-manifests-'));
    loop = spawnCli(['run', '-f', dir, '--metrics-addr', '0', '--process-poll', '300ms', '--debounce', '50ms', '--concurrency', '4'], { stateDir });
  });
  after(async () => {
    if (loop.child.exitCode === null) loop.child.kill('SIGTERM');
    assertNoCrash({ ...(await loop.exited), stderr: loop.err() }, 'acetate run');
    await cleanupStateDir(stateDir);
    await assertNoLeaks(stateDir);
    await rm(stateDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it(`${HANGERS} containers whose exec probes all hang: the loop still applies an edit at once; hung probes never pile up`, async () => {
    for (let i = 0; i < HANGERS; i++) {
      await writeFile(
        path.join(dir, `hang-${i}.yaml`),
        manifest(`hang-${i}`, {
          extra: `  readinessProbe:\n    exec: { command: [sleep, '3600'] }\n    periodSeconds: 1\n    timeoutSeconds: 2\n  livenessProbe:\n    exec: { command: [sleep, '3601'] }\n    periodSeconds: 1\n    timeoutSeconds: 2\n`,
        }),
      );
    }
    await waitFor(
      `${HANGERS} running`,
      async () => flatContainers((await runCli(['get', '-o', 'json'], { stateDir })).stdout).filter((c) => c.phase === 'Running').length === HANGERS,
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    await waitFor('readiness probes timing out', async () => /timed out after 2s/.test((await ready('hang-0'))?.message ?? ''), { timeoutMs: 30_000 });
    let most = 0;
    const sample = async () => {
      const n = (await processesRunning(['sleep', '3600'])).length + (await processesRunning(['sleep', '3601'])).length;
      most = Math.max(most, n);
    };
    await sample();
    // An edit of one container while 2×HANGERS probes hang: applied as fast as without probes.
    const pid = (await pidOf('hang-0'))!;
    const t0 = performance.now();
    await writeFile(
      path.join(dir, 'hang-0.yaml'),
      manifest('hang-0', {
        memory: '96Mi',
        extra: `  readinessProbe:\n    exec: { command: [sleep, '3600'] }\n    periodSeconds: 1\n    timeoutSeconds: 2\n  livenessProbe:\n    exec: { command: [sleep, '3601'] }\n    periodSeconds: 1\n    timeoutSeconds: 2\n`,
      }),
    );
    await waitFor(
      'the new memory limit in the cgroup',
      async () => {
        await sample();
        return (await cgroupValue(pid, 'memory', 'memory.limit_in_bytes')) === String(96 * MI);
      },
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    const ms = since(t0);
    for (let i = 0; i < 20; i++) await sample();
    console.log(
      `      edit applied in ${ms} ms with ${2 * HANGERS} hanging probes; at most ${most} hung probe processes at once (one per probe: ${PROBES_PER_CONTAINER * HANGERS})`,
    );
    assert.ok(ms < 2000, `edit applied after ${ms} ms`);
    // Hanging checks do not hold the node-wide cap (a slot is given back after a second), so each
    // probe's check hangs at once; never more than one per probe (a worker waits for its check).
    assert.ok(most <= PROBES_PER_CONTAINER * HANGERS, `${most} hung probe processes at once`);
    // A liveness probe that times out fails too: they were killed and restarted with back-off.
    for (let i = 0; i < HANGERS; i++) await rm(path.join(dir, `hang-${i}.yaml`));
    await writeFile(path.join(dir, 'keep.yaml'), manifest('keep', { state: 'Stopped' }));
    await waitFor('all destroyed', async () => flatContainers((await runCli(['get', '-o', 'json'], { stateDir })).stdout).length === 1, {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    await waitFor(
      'no probe process left',
      async () => (await processesRunning(['sleep', '3600'])).length + (await processesRunning(['sleep', '3601'])).length === 0,
      { timeoutMs: 10_000 },
    );
  });

  it("a probe whose binary does not exist: Ready False with runc's reason, the loop goes on", async () => {
    await writeFile(
      path.join(dir, 'nobin.yaml'),
      manifest('nobin', { extra: `  readinessProbe:\n    exec: { command: [/no/such/probe] }\n    periodSeconds: 1\n` }),
    );
    const c = await waitFor(
      'nobin not ready',
      async () => {
        const r = await ready('nobin');
        return r?.status === 'False' && r.reason === 'ReadinessProbe' && /no such file|not found/i.test(r.message ?? '') ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.match(c.message ?? '', /\/no\/such\/probe/);
    assert.equal(loop.child.exitCode, null);
    await rm(path.join(dir, 'nobin.yaml'));
  });

  it('exec into a container while it is destroyed: the exec ends, the destroy completes, nothing is left', async () => {
    await writeFile(path.join(dir, 'victim.yaml'), manifest('victim', { grace: 30 }));
    await waitFor('victim running', async () => (await pidOf('victim')) !== undefined, { timeoutMs: 30_000 });
    const execs = Array.from({ length: 3 }, () => spawnCli(['exec', 'victim', '--', 'sleep', '3602'], { stateDir }));
    await waitFor('the execs run', async () => (await processesRunning(['sleep', '3602'])).length === 3, { timeoutMs: 10_000 });
    const t0 = performance.now();
    await rm(path.join(dir, 'victim.yaml'));
    for (const e of execs) {
      const r = await e.exited;
      // The command was killed with the container (its PID 1 exited): 128 + SIGKILL, no crash.
      assert.deepEqual(r, { code: 137, signal: null }, e.err());
      assert.doesNotMatch(e.err(), /\n\s+at .+:\d+:\d+\)?\n|TypeError|Unhandled/);
    }
    const ms = since(t0);
    await waitFor('victim destroyed', async () => !(await runCli(['get', '-o', 'json'], { stateDir })).stdout.includes('"victim"'), { timeoutMs: 20_000 });
    assert.ok(ms < 10_000, `execs ended ${ms} ms after the destroy began (the init forwards SIGTERM; no 30 s grace)`);
    assert.deepEqual(await processesRunning(['sleep', '3602']), []);
    const runContainers = path.join(instancePaths(stateDir).runDir, 'containers');
    assert.deepEqual(
      (await readdir(runContainers).catch(() => [] as string[])).filter((n) => n.includes('victim')),
      [],
      'no exec pid file keeps its run dir',
    );
  });

  it('logs -f while the container is destroyed: shows its lines and ends with exit 0', async () => {
    await writeFile(path.join(dir, 'talker.yaml'), manifest('talker', { script: 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done' }));
    await waitFor('talker running', async () => (await pidOf('talker')) !== undefined, { timeoutMs: 30_000 });
    const followers = Array.from({ length: 3 }, () => spawnCli(['logs', '-f', 'talker'], { stateDir }));
    await waitFor('lines followed', () => followers.every((f) => /tick 5\n/.test(f.out())), { timeoutMs: 10_000 });
    await rm(path.join(dir, 'talker.yaml'));
    for (const f of followers) {
      const r = await Promise.race([f.exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000))]);
      assert.notEqual(r, 'hung', 'logs -f ended when the container was destroyed');
      assert.equal((r as { code: number }).code, 0, f.err());
      const nums = f
        .out()
        .trim()
        .split('\n')
        .map((l) => Number(/tick (\d+)/.exec(l)?.[1]));
      nums.forEach((n, i) => assert.equal(n, i, 'every line, in order, once'));
    }
  });
});
