/**
 * Probes that one tenant makes slow, noisy or lingering, under `acetate run` with real containers
 * (issue 20): ten containers whose exec probes hang (timeoutSeconds 3600) do not stop the probes
 * of another container, whose failing liveness probe still restarts it on time; a probe that
 * leaves a child in the background is a success as its command exits (a child holding its output
 * is killed, a daemon left running); a probe printing 100 MB is read only up to a bound; and `run` exits
 * at once on SIGTERM with all those checks in flight, killing them.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { describeRecord, readyCondition } from '../support/describe-record.js';
import { CliProcess } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import { flatContainers } from '../support/get.js';

const HANGERS = 10;

/** The pids cgroup of a process (the container's, for its processes and its execs). */
async function pidsCgroup(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  return /^\d+:pids:(.*)$/m.exec(text)?.[1];
}

/** Host pids of processes whose command line is exactly argv, in one of these pids cgroups. */
async function processes(argv: string[], cgroups: string[]): Promise<number[]> {
  const want = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    if ((await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')) !== want) continue;
    const cg = await pidsCgroup(Number(e));
    if (cg !== undefined && cgroups.includes(cg)) pids.push(Number(e));
  }
  return pids;
}

describe('probes: isolation between containers, background children, bounded output, fast exit (acetate run)', function () {
  this.timeout(180_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let loop: CliProcess | undefined;

  const describeJson = (name: string) => describeRecord(name, { stateDir });
  const ready = async (name: string) => readyCondition(await describeJson(name));
  /** The pids cgroups of these containers (of their running process: the execs join it). */
  const cgroups = async (names: string[]): Promise<string[]> => {
    const out: string[] = [];
    for (const n of names) {
      const pid = (await describeJson(n)).status.pid;
      const cg = pid === undefined ? undefined : await pidsCgroup(pid);
      if (cg !== undefined) out.push(cg);
    }
    return out;
  };
  let hangCgroups: string[] = [];
  const hungProbes = () => processes(['sleep', '3600'], hangCgroups);

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    for (let i = 0; i < HANGERS; i++) {
      await writeFile(
        path.join(dir, `hang-${i}.yaml`),
        manifest(`hang-${i}`, {
          extra: `  readinessProbe:\n    exec: { command: [sleep, '3600'] }\n    periodSeconds: 1\n    timeoutSeconds: 3600\n`,
        }),
      );
    }
    await writeFile(
      path.join(dir, 'sick.yaml'),
      manifest('sick', {
        extra: `  livenessProbe:\n    exec: { command: [sh, -c, 'echo no-heartbeat-file; exit 1'] }\n    initialDelaySeconds: 1\n    periodSeconds: 1\n    failureThreshold: 1\n`,
      }),
    );
    await writeFile(
      path.join(dir, 'bg.yaml'),
      manifest('bg', {
        extra: `  readinessProbe:\n    exec: { command: [sh, -c, 'setsid sleep 700 </dev/null >/dev/null 2>&1 & sleep 600 & exit 0'] }\n    periodSeconds: 30\n    timeoutSeconds: 60\n`,
      }),
    );
    await writeFile(
      path.join(dir, 'loud.yaml'),
      manifest('loud', {
        extra: `  readinessProbe:\n    exec: { command: [sh, -c, 'yes loud-probe | head -c 100000000; exit 1'] }\n    periodSeconds: 5\n    timeoutSeconds: 60\n`,
      }),
    );
    loop = new CliProcess(['run', '-f', dir, '--metrics-addr', '0', '--process-poll', '300ms', '--log-format', 'json'], {
      stateDir,
      env: { ACETATE_CRASHLOOP_BASE_MS: '1500', ACETATE_CRASHLOOP_MAX_MS: '3000' },
    });
  });
  after(async () => {
    await loop?.stop();
    await dirs.cleanupAndAssertNoLeaks();
  });

  it(`${HANGERS} containers with hanging exec probes beside one whose liveness probe fails: it is still restarted on time`, async () => {
    const hangers = Array.from({ length: HANGERS }, (_, i) => `hang-${i}`);
    await waitFor('the hanging containers running', async () => (hangCgroups = await cgroups(hangers)).length === HANGERS, { timeoutMs: 60_000 });
    // Every hanging probe is in flight at once: each container's check got started, none waits behind another's.
    await waitFor('a hung check in each of the hanging containers', async () => (await hungProbes()).length === HANGERS, {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    const r0 = (await describeJson('sick')).status.restartCount ?? 0;
    const t0 = performance.now();
    // A kill a second after each start (initialDelaySeconds 1, one failure), then a back-off of 1.5 s, then 3 s.
    const rec = await waitFor(
      'sick restarted twice more',
      async () => {
        const r = await describeJson('sick');
        return (r.status.restartCount ?? 0) >= r0 + 2 ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    console.log(`      sick restarted twice in ${Math.round(performance.now() - t0)} ms beside ${(await hungProbes()).length} hung checks`);
    const kills = rec.recentActions.filter((a) => a.kind === 'kill');
    assert.ok(kills.length >= 2, JSON.stringify(rec.recentActions));
    for (const k of kills) assert.match(k.reason ?? '', /^Liveness probe failed 1 times: no-heartbeat-file \(pid \d+\)/);
    assert.equal((await hungProbes()).length, HANGERS, 'the hung checks still run (one per probe): they were not the ones given up');
    const c = await ready('hang-0');
    assert.equal(c?.status, 'False', 'a hanging readiness probe never made its container Ready');
    assert.equal(c?.reason, 'ReadinessProbe');
  });

  it('a probe whose command leaves a child in the background is a success as the command exits; the child holding its output is killed', async () => {
    const c = await waitFor(
      'bg Ready',
      async () => {
        const r = await ready('bg');
        return r?.status === 'True' ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.match(c.message ?? '', /readiness probe succeeded/);
    const readyAt = Date.parse(c.lastTransitionTime ?? '');
    const startedAt = Date.parse((await describeJson('bg')).status.startedAt ?? '');
    assert.ok(readyAt - startedAt < 20_000, `Ready ${readyAt - startedAt} ms after the start, not at the timeout (60 s)`);
    // runc exec reports the code only once the output pipes close: the child still holding them
    // (in the command's process group) was killed; the one that left the group and closed its
    // output (a daemon) runs on, as the kubelet leaves it.
    const bg = await cgroups(['bg']);
    assert.equal(bg.length, 1);
    assert.deepEqual(await processes(['sleep', '600'], bg), [], 'the child holding the output is gone');
    assert.ok((await processes(['sleep', '700'], bg)).length >= 1, 'the daemon runs on in the container');
  });

  it('a probe printing 100 MB is read up to a bound: the check ends as the pipe closes, with the kept output', async () => {
    const c = await waitFor(
      'loud not Ready with its output',
      async () => {
        const r = await ready('loud');
        return r?.status === 'False' && /loud-probe/.test(r.message ?? '') ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.match(c.message ?? '', /^readiness probe has not succeeded yet: (loud-probe\n)+[a-z-]*… \(output beyond \d+ bytes not read\)$/);
    const read = Number(/beyond (\d+) bytes/.exec(c.message ?? '')![1]);
    assert.ok(read >= 1024 * 1024 && read < 2 * 1024 * 1024, `read ${read} bytes of 100 MB`);
  });

  it('run exits within a second of SIGTERM with the hanging checks in flight, and kills them', async () => {
    assert.equal((await hungProbes()).length, HANGERS, 'checks in flight');
    const t0 = performance.now();
    loop!.child.kill('SIGTERM');
    const exit = await loop!.exit;
    const ms = Math.round(performance.now() - t0);
    console.log(`      acetate run exited ${ms} ms after SIGTERM with ${HANGERS} hanging checks in flight`);
    assert.deepEqual(exit, { code: 0, signal: null });
    // The bound is a second; 3 s here, as a loaded machine may be slow to run anything.
    assert.ok(ms < 3000, `exited ${ms} ms after SIGTERM`);
    assert.deepEqual(await hungProbes(), [], 'no check left running after acetate exited');
    // The containers keep running (SIGTERM stops acetate, not them).
    const r = await runCli(['get', '-o', 'json'], { stateDir });
    const hang = flatContainers(r.stdout).filter((x) => x.name.startsWith('hang-'));
    assert.deepEqual(
      hang.map((x) => x.phase),
      hang.map(() => 'Running'),
    );
  });
});
