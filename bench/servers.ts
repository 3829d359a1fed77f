/**
 * Issue 16's benchmarks (`npm run bench -- --only servers`; with --quick, smaller):
 *
 *   1. destroying the examples (manifests/) with the init (spec.init, default) vs without it
 *      (init: false, the command as PID 1: the baseline), side by side, medians of repetitions;
 *      and one shell loop `while true; do sleep 1; done` with a 30 s grace period, both ways.
 *   2. probes' cost on the loop: N running containers under `acetate run`, with a 1 s exec
 *      readiness probe each vs without probes (baseline): acetate's CPU per second (its own and
 *      its children's, i.e. the `runc exec` of every check) over a quiet window, and the latency
 *      of a file edit (memory limit) to the cgroup, p50/p95: probes must not slow the loop.
 *
 * Writes bench/results/servers.{md,json}. Everything created is removed, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { cleanupStateDir } from './lib/leaks.js';
import { fmtMs, median, quantile, round } from './lib/stats.js';
import { measure, procCpuMs } from './lib/sys.js';
import { tmpDir } from './lib/workload.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const log = (m: string): void => console.log(`[bench servers ${new Date().toISOString().slice(11, 19)}] ${m}`);

interface ServersResults {
  date: string;
  mode: string;
  destroyExamples: { initMs: number[]; bareMs: number[] };
  destroyLoop30s: { initMs: number; bareMs: number };
  probes: { containers: number; windowS: number; withProbes: LoopSample; without: LoopSample };
}

interface LoopSample {
  cpuMsPerS: number;
  editP50Ms: number;
  editP95Ms: number;
  checksPerS?: number;
}

const cli = (stateDir: string, args: string[]) => measure(process.execPath, [CLI, '--state-dir', stateDir, ...args], { timeoutMs: 600_000 });

async function withInstance<T>(fn: (stateDir: string, dir: string) => Promise<T>): Promise<T> {
  const stateDir = await tmpDir('srv-');
  const dir = await tmpDir('srv-m-');
  try {
    return await fn(stateDir, dir);
  } finally {
    await cleanupStateDir(stateDir).catch((err: unknown) => log(`cleanup of ${stateDir}: ${String(err)}`));
    await rm(stateDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

/** The examples, optionally with `init: false` added to each spec. */
async function writeExamples(dir: string, init: boolean): Promise<void> {
  const src = path.join(PACKAGE_ROOT, 'manifests');
  for (const f of (await readdir(src)).filter((n) => n.endsWith('.yaml'))) {
    const text = await readFile(path.join(src, f), 'utf8');
    await writeFile(path.join(dir, f), init ? text : text.replace(/^spec:\n/m, 'spec:\n  init: false\n'));
  }
}

async function destroyExamples(init: boolean, reps: number): Promise<number[]> {
  return withInstance(async (stateDir, dir) => {
    const empty = path.join(dir, 'empty');
    const full = path.join(dir, 'full');
    await mkdir(empty);
    await mkdir(full);
    await writeExamples(full, init);
    const out: number[] = [];
    for (let i = 0; i < reps; i++) {
      const a = await cli(stateDir, ['apply', '-f', full]);
      if (a.code !== 0) throw new Error(`apply failed: ${a.stderr}`);
      const d = await cli(stateDir, ['apply', '-f', empty, '--allow-empty']);
      if (d.code !== 0) throw new Error(`destroy failed: ${d.stderr}`);
      out.push(round(d.wallMs));
    }
    return out;
  });
}

async function destroyLoop(init: boolean): Promise<number> {
  return withInstance(async (stateDir, dir) => {
    await writeFile(
      path.join(dir, 'loop.yaml'),
      `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: loop }
spec:
  template: host
  command: [sh, -c, 'while true; do sleep 1; done']
  terminationGracePeriodSeconds: 30
  init: ${init}
`,
    );
    const a = await cli(stateDir, ['apply', '-f', dir]);
    if (a.code !== 0) throw new Error(`apply failed: ${a.stderr}`);
    await rm(path.join(dir, 'loop.yaml'));
    const d = await cli(stateDir, ['apply', '-f', dir, '--allow-empty']);
    return round(d.wallMs);
  });
}

function manifestOf(name: string, memoryMi: number, probes: boolean): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: ${name} }
spec:
  template: host
  command: [sleep, '1000000']
  terminationGracePeriodSeconds: 0
  resources: { memory: ${memoryMi}Mi }
${probes ? '  readinessProbe:\n    exec: { command: [/bin/true] }\n    periodSeconds: 1\n' : ''}`;
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function loopSample(n: number, probes: boolean, windowS: number, edits: number): Promise<LoopSample> {
  return withInstance(async (stateDir, dir) => {
    for (let i = 0; i < n; i++) await writeFile(path.join(dir, `c${i}.yaml`), manifestOf(`c${i}`, 64, probes));
    const a = await cli(stateDir, ['apply', '-f', dir, '--concurrency', '8']);
    if (a.code !== 0) throw new Error(`apply failed: ${a.stderr}`);
    const child: ChildProcess = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'run', '-f', dir, '--metrics-addr', '0', '--debounce', '20ms'], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    try {
      const pidOf = async (name: string): Promise<number> => {
        const r = await cli(stateDir, ['get', name, '-o', 'json']);
        return (JSON.parse(r.stdout) as { status: { pid: number } }).status.pid;
      };
      // Every container adopted (Ready), probes running.
      await waitUntil(
        'ready',
        async () => {
          const r = await cli(stateDir, ['get', '-o', 'json']);
          const items = (JSON.parse(r.stdout) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] }).items;
          return items.length === n && items.every((o) => o.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
        },
        120_000,
      );
      await new Promise((r) => setTimeout(r, 2000));
      const c0 = await procCpuMs(child.pid!);
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, windowS * 1000));
      const cpuMsPerS = ((await procCpuMs(child.pid!)) - c0) / ((performance.now() - t0) / 1000);
      const lat: number[] = [];
      for (let e = 0; e < edits; e++) {
        const name = `c${e % n}`;
        const pid = await pidOf(name);
        const mem = e % 2 === 0 ? 96 : 64;
        const limitFile = `/sys/fs/cgroup/memory${
          (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
            .split('\n')
            .find((l) => l.includes(':memory:'))!
            .split(':')[2]
        }/memory.limit_in_bytes`;
        const e0 = performance.now();
        await writeFile(path.join(dir, `${name}.yaml`), manifestOf(name, mem, probes));
        await waitUntil('the new limit', async () => (await readFile(limitFile, 'utf8')).trim() === String(mem * 1024 * 1024), 30_000);
        lat.push(performance.now() - e0);
      }
      return { cpuMsPerS: round(cpuMsPerS, 1), editP50Ms: round(median(lat)), editP95Ms: round(quantile(lat, 0.95)) };
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
}

function markdown(r: ServersResults): string {
  const med = (xs: number[]) => median(xs);
  const p = r.probes;
  return `# Servers benchmarks (issue 16): init, probes

Run ${r.date} (${r.mode}).

## Destroying the examples (manifests/: web, worker, report)

| | median | runs |
| --- | ---: | --- |
| with the init (catatonit as PID 1, default) | ${fmtMs(med(r.destroyExamples.initMs))} | ${r.destroyExamples.initMs.join(', ')} ms |
| without (\`init: false\`, the command is PID 1; baseline) | ${fmtMs(med(r.destroyExamples.bareMs))} | ${r.destroyExamples.bareMs.join(', ')} ms |

A shell loop (\`while true; do sleep 1; done\`, terminationGracePeriodSeconds 30): destroy takes
${fmtMs(r.destroyLoop30s.initMs)} with the init, ${fmtMs(r.destroyLoop30s.bareMs)} without (the shell as PID 1 ignores SIGTERM: the whole grace period, then SIGKILL).

## Probes' cost on the loop: ${p.containers} containers, a 1 s exec readiness probe each

| | acetate run CPU (own + runc exec children) | file edit → cgroup, p50 / p95 |
| --- | ---: | ---: |
| with probes (${p.containers} checks/s) | ${p.withProbes.cpuMsPerS} ms/s | ${fmtMs(p.withProbes.editP50Ms)} / ${fmtMs(p.withProbes.editP95Ms)} |
| without probes (baseline) | ${p.without.cpuMsPerS} ms/s | ${fmtMs(p.without.editP50Ms)} / ${fmtMs(p.without.editP95Ms)} |

CPU over a ${p.windowS} s quiet window after every container was Ready.
`;
}

export async function serversBench(opts: { quick: boolean; out: string }): Promise<number> {
  const reps = opts.quick ? 2 : 3;
  const n = opts.quick ? 30 : 100;
  const windowS = opts.quick ? 5 : 15;
  const edits = opts.quick ? 6 : 12;
  log('destroy of the examples, with and without the init');
  const initMs: number[] = [];
  const bareMs: number[] = [];
  // Interleaved, so that a noisy moment does not land on one side only.
  for (let i = 0; i < reps; i++) {
    initMs.push(...(await destroyExamples(true, 1)));
    bareMs.push(...(await destroyExamples(false, 1)));
  }
  log(`examples: init ${initMs.join(', ')} ms; without ${bareMs.join(', ')} ms`);
  const loopInit = await destroyLoop(true);
  const loopBare = await destroyLoop(false);
  log(`shell loop, 30 s grace: init ${loopInit} ms; without ${loopBare} ms`);
  log(`probes: ${n} containers, 1 s exec probes vs none`);
  const without = await loopSample(n, false, windowS, edits);
  const withProbes = await loopSample(n, true, windowS, edits);
  log(`without probes ${JSON.stringify(without)}; with ${JSON.stringify(withProbes)}`);
  const results: ServersResults = {
    date: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    destroyExamples: { initMs, bareMs },
    destroyLoop30s: { initMs: loopInit, bareMs: loopBare },
    probes: { containers: n, windowS, withProbes, without },
  };
  await mkdir(opts.out, { recursive: true });
  await writeFile(path.join(opts.out, 'servers.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(opts.out, 'servers.md'), markdown(results));
  log(`results in ${path.join(opts.out, 'servers.md')}`);
  return 0;
}
