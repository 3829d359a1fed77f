/**
 * Probes' cost on `acetate run` at steady state (issue 20; `npm run bench -- --only probes`, alone;
 * --quick: 50 containers and shorter windows; --sizes N: N containers):
 *
 *   - baseline: N running containers without probes: what the loop costs by itself;
 *   - probed: the same N, each with an exec readiness probe at Kubernetes' default period (10 s);
 *   - probed + loud: the same, plus one container whose probe prints 100 MB every second (the
 *     output a check reads is bounded: what it costs beyond the kept 10 KiB is what is measured).
 *
 * CPU of the `acetate run` process from /proc/<pid>/stat (its own and its reaped children's, i.e.
 * every `runc exec` of a check), in ms per second over a window of whole periods after every
 * probed container is Ready. One apply of the N containers serves all three windows (each window is
 * a new `acetate run` on the same state dir, told the new manifests). Writes
 * bench/results/probes.{md,json}. Everything created is removed, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { cleanupStateDir } from './lib/leaks.js';
import { round } from './lib/stats.js';
import { measure, procCpuMs } from './lib/sys.js';
import { tmpDir } from './lib/workload.js';

const CLI = process.env.ACETATE_BENCH_CLI ?? path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const log = (m: string): void => console.log(`[bench probes ${new Date().toISOString().slice(11, 19)}] ${m}`);
const cli = (stateDir: string, args: string[]) => measure(process.execPath, [CLI, '--state-dir', stateDir, ...args], { timeoutMs: 600_000 });

interface Window {
  what: string;
  cpuMsPerS: number;
  windowS: number;
  /** Probed containers not Ready at the end of the window (their checks failed or timed out). */
  notReady: number;
  /** Checks of the probed containers made in the window. */
  checks: number;
}

export interface ProbesResults {
  date: string;
  mode: string;
  cli: string;
  containers: number;
  periodSeconds: number;
  windows: Window[];
}

const PERIOD_S = 10;

function manifestOf(name: string, probe: 'none' | 'quiet' | 'loud'): string {
  const probes = {
    none: '',
    // Each check adds a byte to the container's /tmp/checks: checks are counted.
    quiet: `  readinessProbe:\n    exec: { command: [sh, -c, 'echo >> /tmp/checks'] }\n    periodSeconds: ${PERIOD_S}\n`,
    loud: "  readinessProbe:\n    exec: { command: [sh, -c, 'head -c 100000000 /dev/zero; exit 0'] }\n    periodSeconds: 1\n    timeoutSeconds: 5\n",
  }[probe];
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: ${name} }
spec:
  template: host
  command: [sleep, '1000000']
  terminationGracePeriodSeconds: 0
${probes}`;
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Ready condition of every container, by name. */
async function readiness(stateDir: string): Promise<Map<string, string | undefined>> {
  const r = await cli(stateDir, ['get', '-o', 'json']);
  const items = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }).items;
  return new Map(items.map((o) => [o.metadata.name, o.status?.conditions?.find((c) => c.type === 'Ready')?.status]));
}

/** Checks made so far: the bytes of /tmp/checks (a tmpfs of the container, seen through its PID 1's root) of the probed containers. */
async function countChecks(stateDir: string, names: string[]): Promise<number> {
  if (!names.length) return 0;
  const r = await cli(stateDir, ['get', '-o', 'json']);
  const items = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { pid?: number } }[] }).items;
  const want = new Set(names);
  let n = 0;
  for (const o of items) {
    if (!want.has(o.metadata.name) || o.status?.pid === undefined) continue;
    n += (await stat(`/proc/${o.status.pid}/root/tmp/checks`).catch(() => ({ size: 0 }))).size;
  }
  return n;
}

/** One `acetate run` on the state dir: waits for `settled`, then measures its CPU over windowS. */
async function runWindow(stateDir: string, dir: string, what: string, windowS: number, settled: () => Promise<boolean>, probed: string[]): Promise<Window> {
  const child: ChildProcess = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'run', '-f', dir, '--metrics-addr', '0'], { stdio: 'ignore' });
  try {
    await waitUntil(`${what}: steady state`, settled, 300_000);
    // One period more: the first checks (all due at once when the loop adopts the containers) are past.
    await new Promise((r) => setTimeout(r, PERIOD_S * 1000));
    const k0 = await countChecks(stateDir, probed);
    const c0 = await procCpuMs(child.pid!);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const seconds = (performance.now() - t0) / 1000;
    const cpuMsPerS = round(((await procCpuMs(child.pid!)) - c0) / seconds, 1);
    const checks = (await countChecks(stateDir, probed)) - k0;
    const ready = await readiness(stateDir);
    const notReady = probed.filter((x) => ready.get(x) !== 'True').length;
    log(
      `${what}: ${cpuMsPerS} ms/s of CPU over ${round(seconds, 1)} s, ${checks} checks; ${notReady} of ${probed.length} probed containers not Ready at its end`,
    );
    return { what, cpuMsPerS, windowS: round(seconds, 1), notReady, checks };
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

export async function probesBench(opts: { quick: boolean; out: string; n?: number }): Promise<number> {
  const n = opts.n ?? (opts.quick ? 50 : 200);
  const windowS = (opts.quick ? 2 : 3) * PERIOD_S;
  const stateDir = await tmpDir('probes-');
  const dir = await tmpDir('probes-m-');
  const names = Array.from({ length: n }, (_, i) => `p${i}`);
  const writeAll = (probe: 'none' | 'quiet') => Promise.all(names.map((name) => writeFile(path.join(dir, `${name}.yaml`), manifestOf(name, probe))));
  const windows: Window[] = [];
  try {
    log(`${n} containers (${CLI})`);
    await writeAll('none');
    const a = await cli(stateDir, ['apply', '-f', dir, '--concurrency', '8']);
    if (a.code !== 0) throw new Error(`apply failed: ${a.stderr}`);
    const running = async () => (await readiness(stateDir)).size === n;
    windows.push(await runWindow(stateDir, dir, `${n} containers, no probes (baseline)`, windowS, running, []));
    await writeAll('quiet');
    const allReady = async () => {
      const r = await readiness(stateDir);
      return names.every((x) => r.get(x) === 'True');
    };
    windows.push(await runWindow(stateDir, dir, `${n} containers, an exec probe every ${PERIOD_S} s each`, windowS, allReady, names));
    await writeFile(path.join(dir, 'loud.yaml'), manifestOf('loud', 'loud'));
    // Steady state: the loud container runs (its checks may well fail: its output is cut).
    const loudRuns = async () => (await readiness(stateDir)).has('loud');
    windows.push(await runWindow(stateDir, dir, `the same + 1 whose probe prints 100 MB every 1 s`, windowS, loudRuns, names));
  } finally {
    await cleanupStateDir(stateDir).catch((err: unknown) => log(`cleanup of ${stateDir}: ${String(err)}`));
    await rm(stateDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
  const results: ProbesResults = {
    date: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    cli: CLI,
    containers: n,
    periodSeconds: PERIOD_S,
    windows,
  };
  await mkdir(opts.out, { recursive: true });
  await writeFile(path.join(opts.out, 'probes.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(
    path.join(opts.out, 'probes.md'),
    `# Probes' cost on \`acetate run\` (issue 20)\n\nRun ${results.date} (${results.mode}), ${CLI}.\n\n| what | acetate run CPU (own + runc exec children) | checks | probed containers not Ready at the end |\n| --- | ---: | ---: | ---: |\n${windows
      .map((w) => `| ${w.what} | ${w.cpuMsPerS} ms/s (${w.windowS} s) | ${w.checks} | ${w.notReady} |`)
      .join('\n')}\n`,
  );
  log(`results in ${path.join(opts.out, 'probes.md')}`);
  return 0;
}
