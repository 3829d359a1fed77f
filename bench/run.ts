/**
 * acetate's benchmarks against the physical limit (`npm run bench`; `-- --quick` for a fast run).
 *
 *   1. create N containers from one manifest change until all run: acetate apply (concurrency 1
 *      and 8) vs a bare shell loop (overlay mount + `runc run -d` per container, bench/baseline)
 *   2. a no-op reconcile pass (load + list + plan) over 100 and 1000 running containers: CPU time
 *   3. latency from saving a file that changes memory to the new limit in the cgroup (acetate run)
 *   4. destroy N containers: acetate vs the bare loop
 *   5. acetate run's RSS with 0, 100 and 1000 containers; per-container overhead on the node
 *   6. what isolation costs at create: seccomp and user namespaces, each against the bare loop
 *      with the same settings (bench/isolation.ts; results/isolation.{md,json})
 *
 * Medians over repetitions; ratios to the bare loop. Results: bench/results/results.{md,json},
 * chart.svg. Everything created is removed, also on failure or Ctrl-C.
 *
 * Options: --quick (or ACETATE_BENCH_QUICK=1): smaller N and fewer repetitions.
 *          --only create,noop,latency,rss,isolation,network,images,disk,servers (default all but servers; isolation: bench/isolation.ts, network: bench/network.ts, images: bench/images.ts, disk: bench/disk.ts, servers: bench/servers.ts alone)   --out DIR (default bench/results)
 *          --sizes 100 (or 10,100): only these N for create/destroy
 *          --work-dir DIR: where state dirs, work dirs and manifests go (default /var/lib/acetate-bench,
 *          next to acetate's default state dir; removed at the end if empty)
 *          --run-root DIR: where run dirs go (acetate's --run-dir, the bare loop's runc root and
 *          bundles). Default: under /run if it is a tmpfs, as on systemd hosts and Kubernetes
 *          nodes; otherwise on a tmpfs the benchmark mounts for the run (and removes)
 *          --from results.json: no measurement, re-render results.md and chart.svg from it
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/api/crd.js';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { cleanupStateDir, snapshotLeaks } from './lib/leaks.js';
import { renderChart, type Panel } from './lib/chart.js';
import { summarizeProfile, type ProfileSummary } from './lib/profile.js';
import { fmtKiB, fmtMiB, fmtMs, fmtRatio, median, quantile, round } from './lib/stats.js';
import { CpuGroup, duBytes, fileCreateMicros, findProcs, machine, measure, procCpuMs, pssBytes, vmRssBytes, type Measured } from './lib/sys.js';
import { baselineConfigTemplate, containerYaml, getWorkRoot, nameOf, saveAtomically, setWorkRoot, tmpDir, writeFilePerContainer, writeOneFile } from './lib/workload.js';
import type { PassSample } from './noop-pass.js';
import { isolationBenchmark } from './isolation.js';
import { networkBenchmark } from './network.js';
import { runImageBench } from './images.js';
import { diskBenchmark } from './disk.js';

// ------------------------------------------------------------------ configuration

const argv = process.argv.slice(2);
/** --from results.json: only re-render results.md and chart.svg from earlier results. */
const FROM = argv.includes('--from') ? path.resolve(argv[argv.indexOf('--from') + 1]!) : undefined;
const LOADED = FROM ? (JSON.parse(readFileSync(FROM, 'utf8')) as Results) : undefined;
const QUICK = LOADED ? LOADED.mode === 'quick' : argv.includes('--quick') || process.env.ACETATE_BENCH_QUICK === '1';
const onlyArg = argv.find((a) => a.startsWith('--only'))?.split('=')[1] ?? (argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined);
const ONLY = new Set((onlyArg ?? 'create,noop,latency,rss,isolation,network,images,disk').split(','));
/** --sizes 100 or --sizes 10,100: only these N for the create/destroy benchmark (repetitions as configured). */
const sizesArg = argv.includes('--sizes') ? argv[argv.indexOf('--sizes') + 1]!.split(',').map(Number) : undefined;
const OUT = path.resolve(argv.includes('--out') ? argv[argv.indexOf('--out') + 1]! : path.join(PACKAGE_ROOT, 'bench', 'results'));

const CFG = QUICK
  ? { sizes: [10, 50], reps: { 10: 3, 50: 2 } as Record<number, number>, concurrencies: [1, 8], big: 200, mid: 50, edits: 20, noopPasses: 5, rssWindowS: 12, resync: '5s' }
  : { sizes: [10, 100, 500], reps: { 10: 5, 100: 3, 500: 2 } as Record<number, number>, concurrencies: [1, 8], big: 1000, mid: 100, edits: 50, noopPasses: 10, rssWindowS: 31, resync: '10s' };

if (argv.includes('--work-dir')) setWorkRoot(argv[argv.indexOf('--work-dir') + 1]!);
const RUN_ROOT_ARG = argv.includes('--run-root') ? path.resolve(argv[argv.indexOf('--run-root') + 1]!) : undefined;
/** Set by prepareRunRoot(): the parent of every run dir of the run. */
let runRoot = '';
if (sizesArg) {
  if (!sizesArg.every((n) => Number.isSafeInteger(n) && n > 0)) throw new Error(`--sizes: expected numbers such as 100 or 10,100, got ${sizesArg.join(',')}`);
  CFG.sizes = sizesArg;
}

const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
/** The node flags bin/acetate runs with (its `#!/usr/bin/env -S node ...` line): measured as users run it. */
const NODE_FLAGS = (/^#!\S*env -S node(.*)$/m.exec(readFileSync(path.join(PACKAGE_ROOT, 'bin', 'acetate'), 'utf8'))?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
const CPU_REPORT = path.join(PACKAGE_ROOT, 'dist', 'bench', 'lib', 'cpu-report.js');
const NOOP = path.join(PACKAGE_ROOT, 'dist', 'bench', 'noop-pass.js');
const BASELINE = path.join(PACKAGE_ROOT, 'bench', 'baseline');

const log = (m: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);

// ------------------------------------------------------------------ cleanup, whatever happens

const cleanups: (() => Promise<void>)[] = [];
function onCleanup(fn: () => Promise<void>): () => Promise<void> {
  let done = false;
  const once = async (): Promise<void> => {
    if (done) return;
    done = true;
    const i = cleanups.indexOf(once);
    if (i >= 0) cleanups.splice(i, 1);
    await fn().catch((err: unknown) => console.error(`cleanup failed: ${(err as Error).message}`));
  };
  cleanups.push(once);
  return once;
}
async function cleanupAll(): Promise<void> {
  for (const fn of [...cleanups].reverse()) await fn();
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------ acetate and the bare loop

const cpuGroup = new CpuGroup(`acetate-bench-${process.pid}`);

interface Instance {
  stateDir: string;
  /** Its run dir (under the run root), given to every acetate process as $ACETATE_RUN_DIR. */
  runDir: string;
  dir: string;
  env: { ACETATE_RUN_DIR: string };
  cleanup: () => Promise<void>;
}

async function newInstance(): Promise<Instance> {
  const stateDir = await tmpDir('acetate-bench-s-');
  const runDir = await mkdtemp(path.join(runRoot, 'acetate-bench-r-'));
  const dir = await tmpDir('acetate-bench-m-');
  const cleanup = onCleanup(async () => {
    await cleanupStateDir(stateDir, { runDir });
    await rm(dir, { recursive: true, force: true });
  });
  return { stateDir, runDir, dir, env: { ACETATE_RUN_DIR: runDir }, cleanup };
}

/**
 * The run root: under /run when that is a tmpfs (as on systemd hosts and Kubernetes nodes, where
 * acetate's /run/acetate is), else on a tmpfs mounted for this run, so that acetate's run dir and
 * the bare loop's runc root are where they would be on a node. `--run-root` overrides.
 */
async function prepareRunRoot(): Promise<{ dir: string; fs: string }> {
  if (RUN_ROOT_ARG) {
    await mkdir(RUN_ROOT_ARG, { recursive: true, mode: 0o700 });
    return { dir: RUN_ROOT_ARG, fs: (await measure('stat', ['-f', '-c', '%T', RUN_ROOT_ARG])).stdout.trim() };
  }
  if ((await measure('stat', ['-f', '-c', '%T', '/run'])).stdout.trim() === 'tmpfs') {
    const dir = await mkdtemp('/run/acetate-bench-');
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    return { dir, fs: 'tmpfs (/run)' };
  }
  const dir = path.join(getWorkRoot(), 'run');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const m = await measure('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=2g', 'acetate-bench-run', dir]);
  check(m.code === 0, `cannot mount a tmpfs on ${dir}: ${m.stderr}`);
  onCleanup(async () => {
    await measure('umount', [dir]);
    await rmdir(dir).catch(() => undefined);
  });
  return { dir, fs: 'tmpfs (mounted by the benchmark: /run is not a tmpfs here)' };
}

function acetate(inst: Instance, args: string[], extraNode: string[] = []): Promise<Measured> {
  const cpuFile = path.join(inst.dir, '..', `${path.basename(inst.dir)}.cpu.json`);
  return measure(process.execPath, [...NODE_FLAGS, ...extraNode, '--import', CPU_REPORT, CLI, '--state-dir', inst.stateDir, ...args], {
    group: cpuGroup,
    cpuFile,
    env: { ACETATE_BENCH_CPU_FILE: cpuFile, ...inst.env },
    timeoutMs: 3_600_000,
  }).finally(() => rm(cpuFile, { force: true }));
}

async function listJson(inst: Instance): Promise<{ name: string; phase: string; pid?: number }[]> {
  const r = await measure(process.execPath, [...NODE_FLAGS, CLI, '--state-dir', inst.stateDir, 'get', '-o', 'json'], { env: inst.env });
  if (r.code !== 0) throw new Error(`acetate get failed: ${r.stderr}`);
    // Container objects (Kubernetes' shape) in a List.
  const list = JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { phase?: string; pid?: number } }[] };
  return list.items.map((o) => ({ name: o.metadata.name, phase: o.status?.phase ?? 'Unknown', pid: o.status?.pid }));
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

interface Baseline {
  work: string;
  template: string;
  /** RUN_DIR of the bare loop's scripts: its runc root and bundles, next to acetate's run dirs. */
  env: { RUN_DIR: string };
  cleanup: () => Promise<void>;
}

async function newBaseline(): Promise<Baseline> {
  const root = await tmpDir('acetate-bench-b-');
  const run = await mkdtemp(path.join(runRoot, 'acetate-bench-b-'));
  const { file } = await baselineConfigTemplate(root);
  const work = path.join(root, 'w');
  const env = { RUN_DIR: run };
  const cleanup = onCleanup(async () => {
    await measure('bash', [path.join(BASELINE, 'cleanup.sh'), work, file], { env });
    await rm(root, { recursive: true, force: true });
    await rm(run, { recursive: true, force: true });
  });
  return { work, template: file, env, cleanup };
}

async function runcCount(root: string): Promise<number> {
  const r = await measure('runc', ['--root', root, 'list', '--format', 'json']);
  return ((JSON.parse(r.stdout.trim() || 'null') as { status: string }[] | null) ?? []).filter((s) => s.status === 'running').length;
}

// ------------------------------------------------------------------ results

interface OpRow {
  op: 'create' | 'destroy';
  n: number;
  variant: string;
  samplesMs: number[];
  medianMs: number;
  /** CPU (ms) per container of the command and everything it started, median. */
  cpuPerContainerMs: number;
  /** acetate only: the node process's own CPU per container. */
  ownCpuPerContainerMs?: number;
  ratio?: number;
}

interface NoopRow {
  n: number;
  passes: number;
  cpuMs: number;
  cpuP90Ms: number;
  /** The process's first pass, caches empty (as a one-shot `acetate apply`, without start-up). */
  firstCpuMs?: number;
  wallMs: number;
  loadCpuMs: number;
  listCpuMs: number;
  planCpuMs: number;
  runcListCpuMs: number;
  runcListWallMs: number;
}

interface Results {
  startedAt: string;
  durationS: number;
  mode: 'full' | 'quick';
  machine: ReturnType<typeof machine> & {
    runc: string;
    conmon: string;
    /** Where the benchmark's directories were, and what creating a small file cost there and in /tmp (µs). */
    workDir?: string;
    fileCreateUs?: { workDir: number; tmp: number };
    /** Where the run dirs were (acetate's --run-dir, the bare loop's runc root and bundles), and on what. */
    runRoot?: string;
    runRootFs?: string;
  };
  ops: OpRow[];
  noop: NoopRow[];
  loop: { n: number; windowS: number; resync: string; cpuMsPerSecond: number; cpuMsPerResync: number; rssBytes: number }[];
  latency?: { n: number; edits: number; p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number; failures: number; detectMs: number; runcUpdateMs: number; samplesMs: number[] };
  rss: { n: number; medianBytes: number; maxBytes: number }[];
  overhead?: { n: number; conmonRssBytes: number; conmonPssBytes: number; initRssBytes: number; initPssBytes: number; privateAreaBytes: number; containerDirBytes: number; runDirBytes?: number; createAt8Ms: number };
  profiles: Record<string, ProfileSummary>;
  notRun: string[];
}

const results: Results = {
  startedAt: new Date().toISOString(),
  durationS: 0,
  mode: QUICK ? 'quick' : 'full',
  machine: { ...machine(), runc: '', conmon: '' },
  ops: [],
  noop: [],
  loop: [],
  rss: [],
  profiles: {},
  notRun: [],
};

// ------------------------------------------------------------------ 1 + 4: create and destroy N

async function opsBenchmark(): Promise<void> {
  for (const n of CFG.sizes) {
    const reps = CFG.reps[n] ?? 2;
    const rows = new Map<string, { create: Measured[]; destroy: Measured[]; cpuC: number[]; cpuD: number[]; ownC: number[]; ownD: number[] }>();
    const row = (v: string) => rows.get(v) ?? rows.set(v, { create: [], destroy: [], cpuC: [], cpuD: [], ownC: [], ownD: [] }).get(v)!;
    for (let rep = 1; rep <= reps; rep++) {
      // bare loop
      {
        const b = await newBaseline();
        try {
          const c = await measure('bash', [path.join(BASELINE, 'create.sh'), b.work, String(n), b.template], { group: cpuGroup, env: b.env });
          check(c.code === 0, `baseline create failed: ${c.stderr}`);
          check((await runcCount(path.join(b.env.RUN_DIR, 'runc'))) === n, 'baseline: not all running');
          const d = await measure('bash', [path.join(BASELINE, 'destroy.sh'), b.work, b.template], { group: cpuGroup, env: b.env });
          check(d.code === 0, `baseline destroy failed: ${d.stderr}`);
          check(!existsSync(path.join(b.work, 'c')) || (await readdir(path.join(b.work, 'c'))).length === 0, 'baseline: destroy left containers');
          const r = row('bare loop');
          r.create.push(c);
          r.destroy.push(d);
          r.cpuC.push(c.cpuMs / n);
          r.cpuD.push(d.cpuMs / n);
          log(`N=${n} rep ${rep}: bare loop create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
        } finally {
          await b.cleanup();
        }
      }
      for (const conc of CFG.concurrencies) {
        const inst = await newInstance();
        try {
          await writeOneFile(inst.dir, n);
          const c = await acetate(inst, ['apply', '-f', inst.dir, '--concurrency', String(conc)]);
          check(c.code === 0, `acetate apply failed: ${c.stderr}\n${c.stdout.slice(-2000)}`);
          const got = await listJson(inst);
          check(got.length === n && got.every((x) => x.phase === 'Running'), `acetate: ${got.filter((x) => x.phase === 'Running').length}/${n} running`);
          await rm(path.join(inst.dir, 'containers.yaml'));
          const d = await acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', String(conc)]);
          check(d.code === 0, `acetate destroy failed: ${d.stderr}`);
          const leaks = await snapshotLeaks(inst.stateDir, { runDir: inst.runDir });
          check(leaks.mounts.length + leaks.runcStates.length + leaks.containerDirs.length === 0, `acetate destroy left ${JSON.stringify(leaks)}`);
          const r = row(`acetate c${conc}`);
          r.create.push(c);
          r.destroy.push(d);
          r.cpuC.push(c.cpuMs / n);
          r.cpuD.push(d.cpuMs / n);
          r.ownC.push((c.ownCpuMs ?? NaN) / n);
          r.ownD.push((d.ownCpuMs ?? NaN) / n);
          log(`N=${n} rep ${rep}: acetate c${conc} create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
        } finally {
          await inst.cleanup();
        }
      }
    }
    const base = rows.get('bare loop')!;
    for (const [variant, r] of rows) {
      for (const op of ['create', 'destroy'] as const) {
        const samples = r[op].map((m) => round(m.wallMs));
        const own = op === 'create' ? r.ownC : r.ownD;
        const out: OpRow = {
          op,
          n,
          variant,
          samplesMs: samples,
          medianMs: median(samples),
          cpuPerContainerMs: round(median(op === 'create' ? r.cpuC : r.cpuD), 1),
          ...(own.length ? { ownCpuPerContainerMs: round(median(own), 1) } : {}),
        };
        out.ratio = round(out.medianMs / median(base[op].map((m) => m.wallMs)), 2);
        results.ops.push(out);
      }
    }
  }
}

/** Where acetate apply's CPU goes, creating mid-size N at concurrency 8 (V8 profile). */
async function createProfile(n: number): Promise<void> {
  const inst = await newInstance();
  const profDir = await tmpDir('acetate-bench-prof-');
  try {
    await writeOneFile(inst.dir, n);
    const c = await acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8'], ['--cpu-prof', '--cpu-prof-dir', profDir]);
    check(c.code === 0, c.stderr);
    const prof = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
    if (prof) results.profiles[`create ${n} (acetate apply, concurrency 8)`] = await summarizeProfile(path.join(profDir, prof));
  } finally {
    await inst.cleanup();
    await rm(profDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ 2: no-op pass

async function noopPass(inst: Instance, n: number, profile: boolean): Promise<void> {
  const r = await measure(process.execPath, [...NODE_FLAGS, NOOP, inst.stateDir, inst.dir, String(CFG.noopPasses)], { timeoutMs: 600_000, env: inst.env });
  check(r.code === 0, `noop-pass failed: ${r.stderr}`);
  const { first, samples } = JSON.parse(r.stdout) as { first: PassSample; samples: PassSample[] };
  check(samples.every((s) => s.actions === 0 && s.unchanged === n), `the no-op pass is not a no-op: ${JSON.stringify(samples[0])}`);
  const m = (f: (s: PassSample) => number) => round(median(samples.map(f)), 1);
  results.noop.push({
    n,
    passes: samples.length,
    cpuMs: m((s) => s.cpuMs),
    cpuP90Ms: round(quantile(samples.map((s) => s.cpuMs), 0.9), 1),
    firstCpuMs: round(first.cpuMs, 1),
    wallMs: m((s) => s.wallMs),
    loadCpuMs: m((s) => s.loadCpuMs),
    listCpuMs: m((s) => s.listCpuMs),
    planCpuMs: m((s) => s.planCpuMs),
    runcListCpuMs: m((s) => s.childCpuMs),
    runcListWallMs: m((s) => s.listWallMs),
  });
  log(`no-op pass over ${n}: ${m((s) => s.cpuMs)} ms CPU (load ${m((s) => s.loadCpuMs)}, list ${m((s) => s.listCpuMs)}, plan ${m((s) => s.planCpuMs)}), ${m((s) => s.wallMs)} ms wall`);
  if (profile) {
    const profDir = await tmpDir('acetate-bench-prof-');
    try {
      const p = await measure(process.execPath, [...NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', profDir, NOOP, inst.stateDir, inst.dir, String(CFG.noopPasses)], { env: inst.env });
      check(p.code === 0, p.stderr);
      const prof = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
      if (prof) results.profiles[`no-op pass over ${n} (${CFG.noopPasses + 2} passes)`] = await summarizeProfile(path.join(profDir, prof));
    } finally {
      await rm(profDir, { recursive: true, force: true });
    }
  }
}

// ------------------------------------------------------------------ acetate run: RSS, loop CPU, latency

interface Loop {
  pid: number;
  out: () => string;
  stop: () => Promise<void>;
}

async function startLoop(inst: Instance, extra: string[] = []): Promise<Loop> {
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, '--state-dir', inst.stateDir, 'run', '-f', inst.dir, '--metrics-addr', '0', '--log-format', 'json', '--concurrency', '8', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...inst.env },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const stop = onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(t);
    }
  });
  const deadline = Date.now() + 600_000;
  while (!out.includes('ready: first sync done')) {
    if (child.exitCode !== null) throw new Error(`acetate run exited: ${out.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error('acetate run not ready after 10 min');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid!, out: () => out, stop };
}

/** RSS samples of acetate run over a window, and its CPU (own + reaped runc children) per second. */
async function loopWindow(inst: Instance, n: number): Promise<void> {
  const loop = await startLoop(inst, ['--resync', CFG.resync]);
  try {
    const rss: number[] = [];
    const cpu0 = await procCpuMs(loop.pid);
    const t0 = performance.now();
    while (performance.now() - t0 < CFG.rssWindowS * 1000) {
      rss.push(await vmRssBytes(loop.pid));
      await new Promise((r) => setTimeout(r, 250));
    }
    const cpuMs = (await procCpuMs(loop.pid)) - cpu0;
    const seconds = (performance.now() - t0) / 1000;
    const resyncS = Number(CFG.resync.replace('s', ''));
    results.rss.push({ n, medianBytes: median(rss), maxBytes: Math.max(...rss) });
    results.loop.push({ n, windowS: round(seconds, 1), resync: CFG.resync, cpuMsPerSecond: round(cpuMs / seconds, 1), cpuMsPerResync: round((cpuMs / seconds) * resyncS), rssBytes: median(rss) });
    log(`acetate run with ${n} containers: RSS ${fmtMiB(median(rss))} (max ${fmtMiB(Math.max(...rss))}), CPU ${round(cpuMs / seconds, 1)} ms/s with --resync ${CFG.resync}`);
  } finally {
    await loop.stop();
  }
}

/** 3: save a file changing memory; time until memory.limit_in_bytes shows it (polled every ~1 ms). */
async function latencyBenchmark(inst: Instance, n: number): Promise<void> {
  const loop = await startLoop(inst);
  const ip = instancePaths(inst.stateDir, inst.runDir);
  const samples: number[] = [];
  const detect: number[] = [];
  const update: number[] = [];
  let failures = 0;
  try {
    for (let e = 0; e < CFG.edits; e++) {
      const i = (e * 7919) % n;
      const name = nameOf(i);
      const memoryMi = e % 2 === 0 ? 48 : 40;
      const limitFile = `/sys/fs/cgroup/memory${ip.cgroupParent}/default_${name}/memory.limit_in_bytes`;
      const want = String(memoryMi * 2 ** 20);
      const logOffset = loop.out().length;
      const wall0 = Date.now();
      const t0 = performance.now();
      await saveAtomically(path.join(inst.dir, `${name}.yaml`), containerYaml(name, memoryMi));
      let seen = NaN;
      while (performance.now() - t0 < 10_000) {
        if ((await readFile(limitFile, 'utf8').catch(() => '')).trim() === want) {
          seen = performance.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      if (Number.isNaN(seen)) failures++;
      else samples.push(seen);
      // Let the loop go quiet before the next edit (edits must not overlap).
      await new Promise((r) => setTimeout(r, 150 + (e % 5) * 37));
      // The loop's own account: when the resize action started and how long runc update took.
      const line = loop
        .out()
        .slice(logOffset)
        .split('\n')
        .find((l) => l.includes(`"container":"default/${name}"`) && l.includes('"action":"resize"'));
      if (line) {
        const rec = JSON.parse(line) as { timestamp: string; durationMs: number };
        const end = Date.parse(rec.timestamp);
        detect.push(end - rec.durationMs - wall0);
        update.push(rec.durationMs);
      }
    }
  } finally {
    await loop.stop();
  }
  results.latency = {
    n,
    edits: CFG.edits,
    p50Ms: round(quantile(samples, 0.5), 1),
    p90Ms: round(quantile(samples, 0.9), 1),
    p99Ms: round(quantile(samples, 0.99), 1),
    maxMs: round(Math.max(...samples), 1),
    failures,
    detectMs: round(median(detect), 1),
    runcUpdateMs: round(median(update), 1),
    samplesMs: samples.map((s) => round(s, 1)),
  };
  log(`latency file save → cgroup limit (${n} containers, ${CFG.edits} edits): p50 ${fmtMs(results.latency.p50Ms)}, p99 ${fmtMs(results.latency.p99Ms)}, ${failures} not seen within 10 s`);
}

/** 5b: what one more container costs the node. */
async function overhead(inst: Instance, n: number, createAt8Ms: number): Promise<void> {
  const conmons = (await findProcs('conmon', inst.stateDir)).slice(0, 50);
  const inits: number[] = [];
  for (const c of (await listJson(inst)).slice(0, 50)) if (c.pid) inits.push(c.pid);
  const ip = instancePaths(inst.stateDir, inst.runDir);
  // A fresh private area: a container created just now, before it wrote anything.
  const fresh = path.join(inst.dir, 'fresh.yaml');
  await writeFile(fresh, containerYaml('fresh'));
  const r = await measure(process.execPath, [...NODE_FLAGS, CLI, '--state-dir', inst.stateDir, 'apply', '-f', inst.dir], { env: inst.env });
  check(r.code === 0, r.stderr);
  const cdir = path.join(ip.containersDir, 'default_fresh');
  const privateAreaBytes = (await duBytes(path.join(cdir, 'upper'))) + (await duBytes(path.join(cdir, 'work')));
  const containerDirBytes = Number((await measure('du', ['-s', '-x', '--block-size=1', cdir])).stdout.split(/\s+/)[0]);
  const runDirBytes = Number((await measure('du', ['-s', '-x', '--block-size=1', path.join(ip.runContainersDir, 'default_fresh')])).stdout.split(/\s+/)[0]);
  await rm(fresh);
  const d = await measure(process.execPath, [...NODE_FLAGS, CLI, '--state-dir', inst.stateDir, 'apply', '-f', inst.dir], { env: inst.env });
  check(d.code === 0, d.stderr);
  const rss = await Promise.all(conmons.map(vmRssBytes));
  const pss = await Promise.all(conmons.map(pssBytes));
  results.overhead = {
    n,
    conmonRssBytes: median(rss),
    conmonPssBytes: median(pss),
    initRssBytes: median(await Promise.all(inits.map(vmRssBytes))),
    initPssBytes: median(await Promise.all(inits.map(pssBytes))),
    privateAreaBytes,
    containerDirBytes,
    runDirBytes,
    createAt8Ms: round(createAt8Ms),
  };
  log(`per container: conmon RSS ${fmtKiB(median(rss))} (PSS ${fmtKiB(median(pss))}), private area ${fmtKiB(privateAreaBytes)}, container dir ${fmtKiB(containerDirBytes)}, run dir ${fmtKiB(runDirBytes)}`);
}

async function loopBenchmarks(): Promise<void> {
  const runExists = existsSync(path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'commands', 'run.js'));
  if (!runExists) results.notRun.push('latency and RSS under `acetate run`: the run command is not built');
  const inst = await newInstance();
  try {
    // 1000 (or 200 in quick mode) running containers, one file each.
    await writeFilePerContainer(inst.dir, CFG.big);
    const c = await acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8']);
    check(c.code === 0, `creating ${CFG.big} failed: ${c.stderr}`);
    log(`created ${CFG.big} containers in ${fmtMs(c.wallMs)} (concurrency 8)`);
    if (ONLY.has('rss')) await overhead(inst, CFG.big, c.wallMs);
    if (ONLY.has('noop')) await noopPass(inst, CFG.big, true);
    if (runExists && ONLY.has('rss')) await loopWindow(inst, CFG.big);
    // Down to 100 (or 50).
    for (let i = CFG.mid; i < CFG.big; i++) await rm(path.join(inst.dir, `${nameOf(i)}.yaml`));
    const d = await acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8']);
    check(d.code === 0, d.stderr);
    if (ONLY.has('noop')) await noopPass(inst, CFG.mid, true);
    if (runExists && ONLY.has('rss')) await loopWindow(inst, CFG.mid);
    if (runExists && ONLY.has('latency')) await latencyBenchmark(inst, CFG.mid);
    // Nothing left.
    for (let i = 0; i < CFG.mid; i++) await rm(path.join(inst.dir, `${nameOf(i)}.yaml`));
    const z = await acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', '8']);
    check(z.code === 0, z.stderr);
    if (runExists && ONLY.has('rss')) await loopWindow(inst, 0);
  } finally {
    await inst.cleanup();
  }
}

// ------------------------------------------------------------------ report

function targetRows(): { what: string; target: string; measured: string; met: boolean | undefined }[] {
  const rows: { what: string; target: string; measured: string; met: boolean | undefined }[] = [];
  const op = (o: string, n: number, v: string) => results.ops.find((r) => r.op === o && r.n === n && r.variant === v);
  const n100 = CFG.sizes.includes(100) ? 100 : CFG.sizes[CFG.sizes.length - 1]!;
  const c1 = op('create', n100, 'acetate c1');
  const c8 = op('create', n100, 'acetate c8');
  if (c1) rows.push({ what: `create ${n100}, concurrency 1 vs bare loop`, target: '≤ 1.2×', measured: fmtRatio(c1.ratio!), met: c1.ratio! <= 1.2 });
  if (c8) rows.push({ what: `create ${n100}, concurrency 8 vs bare loop`, target: '< 1×', measured: fmtRatio(c8.ratio!), met: c8.ratio! < 1 });
  const big = results.noop.find((r) => r.n === CFG.big);
  const mid = results.noop.find((r) => r.n === CFG.mid);
  if (big) rows.push({ what: `no-op pass CPU, ${CFG.big} containers`, target: '< 100 ms', measured: fmtMs(big.cpuMs), met: big.cpuMs < 100 });
  if (big && mid) {
    const growth = big.cpuMs / mid.cpuMs;
    rows.push({ what: `no-op pass growth ${CFG.mid} → ${CFG.big} (${CFG.big / CFG.mid}× containers)`, target: `≈ ${CFG.big / CFG.mid}× (linear) or less`, measured: fmtRatio(growth), met: growth <= (CFG.big / CFG.mid) * 1.25 });
  }
  if (results.latency) {
    rows.push({ what: 'save → limit in cgroup, p50', target: '< 150 ms', measured: fmtMs(results.latency.p50Ms), met: results.latency.p50Ms < 150 && results.latency.failures === 0 });
    rows.push({ what: 'save → limit in cgroup, p99', target: '< 500 ms', measured: fmtMs(results.latency.p99Ms), met: results.latency.p99Ms < 500 && results.latency.failures === 0 });
  }
  const rssBig = results.rss.find((r) => r.n === CFG.big);
  if (rssBig) rows.push({ what: `acetate run RSS, ${CFG.big} containers`, target: '< 100 MB', measured: fmtMiB(rssBig.medianBytes), met: rssBig.medianBytes < 100e6 });
  return rows;
}

function markdown(): string {
  const L: string[] = [];
  const m = results.machine;
  L.push(`# acetate benchmark results (${results.mode})`, '');
  L.push(`${results.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${m.cpus} × ${m.cpuModel} · ${m.memGiB} GiB · Linux ${m.kernel} · Node ${m.node} · ${m.runc} · ${m.conmon} · took ${Math.round(results.durationS / 60)} min`, '');
  if (m.workDir && m.fileCreateUs) {
    L.push(`State and work dirs of both acetate and the bare loop in \`${m.workDir}\`, where creating a small file (write + rename) cost ${m.fileCreateUs.workDir} µs (${m.fileCreateUs.tmp} µs in ${os.tmpdir()}).${m.runRoot ? ` Run dirs (acetate's \`--run-dir\`, the bare loop's runc root and bundles) in \`${m.runRoot}\`: ${m.runRootFs}.` : ''}`, '');
  }
  L.push('How to read this: docs/benchmarks.md. Times are medians over repetitions; ratios are to the bare loop (< 1 is faster than it).', '');
  L.push('## Targets', '', '| what | target | measured | |', '| --- | --- | --- | --- |');
  for (const t of targetRows()) L.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === undefined ? '' : t.met ? 'met' : '**not met**'} |`);
  L.push('');
  if (results.ops.length) {
    for (const op of ['create', 'destroy'] as const) {
      L.push(`## ${op === 'create' ? '1. Create N containers until all run' : '4. Destroy N containers'}`, '');
      L.push('| N | variant | reps | median | × bare loop | per container | CPU per container (all processes) | acetate process CPU per container |', '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const r of results.ops.filter((x) => x.op === op)) {
        L.push(`| ${r.n} | ${r.variant} | ${r.samplesMs.length} | ${fmtMs(r.medianMs)} | ${fmtRatio(r.ratio!)} | ${fmtMs(r.medianMs / r.n)} | ${fmtMs(r.cpuPerContainerMs)} | ${r.ownCpuPerContainerMs !== undefined ? fmtMs(r.ownCpuPerContainerMs) : '–'} |`);
      }
      L.push('');
    }
  }
  if (results.noop.length) {
    L.push('## 2. No-op reconcile pass (load + list + plan, nothing to do)', '');
    L.push('| containers | passes | CPU (median) | CPU p90 | load | list | plan | wall | first pass, empty caches | runc child CPU |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results.noop) L.push(`| ${r.n} | ${r.passes} | ${fmtMs(r.cpuMs)} | ${fmtMs(r.cpuP90Ms)} | ${fmtMs(r.loadCpuMs)} | ${fmtMs(r.listCpuMs)} | ${fmtMs(r.planCpuMs)} | ${fmtMs(r.wallMs)} | ${r.firstCpuMs === undefined ? '–' : fmtMs(r.firstCpuMs)} | ${fmtMs(r.runcListCpuMs)} |`);
    L.push('');
  }
  if (results.loop.length) {
    L.push('### The same under `acetate run` (steady state, nothing changing)', '');
    L.push('| containers | window | --resync | CPU of acetate run + its runc calls | per resync period |', '| ---: | ---: | --- | ---: | ---: |');
    for (const r of results.loop) L.push(`| ${r.n} | ${r.windowS} s | ${r.resync} | ${r.cpuMsPerSecond} ms/s | ${fmtMs(r.cpuMsPerResync)} |`);
    L.push('');
  }
  if (results.latency) {
    const l = results.latency;
    L.push(`## 3. Save a file → new memory limit in the cgroup (acetate run, ${l.n} containers)`, '');
    L.push('| edits | p50 | p90 | p99 | max | not seen in 10 s | loop saw the change (median) | runc update (median) |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    L.push(`| ${l.edits} | ${fmtMs(l.p50Ms)} | ${fmtMs(l.p90Ms)} | ${fmtMs(l.p99Ms)} | ${fmtMs(l.maxMs)} | ${l.failures} | ${fmtMs(l.detectMs)} | ${fmtMs(l.runcUpdateMs)} |`, '');
  }
  if (results.rss.length || results.overhead) {
    L.push('## 5. Memory and disk', '');
    if (results.rss.length) {
      L.push('| containers managed | acetate run RSS (median) | max |', '| ---: | ---: | ---: |');
      for (const r of results.rss) L.push(`| ${r.n} | ${fmtMiB(r.medianBytes)} | ${fmtMiB(r.maxBytes)} |`);
      L.push('');
    }
    const o = results.overhead;
    if (o) {
      L.push('| per container, on the node | |', '| --- | ---: |');
      L.push(`| conmon supervisor RSS (PSS) | ${fmtKiB(o.conmonRssBytes)} (${fmtKiB(o.conmonPssBytes)}) |`);
      L.push(`| the container's own init (\`sleep\`) RSS (PSS), for scale | ${fmtKiB(o.initRssBytes)} (${fmtKiB(o.initPssBytes)}) |`);
      L.push(`| fresh private area (upper + work) | ${fmtKiB(o.privateAreaBytes)} |`);
      L.push(`| whole container dir on disk (private area, record, status, log) | ${fmtKiB(o.containerDirBytes)} |`);
      if (o.runDirBytes !== undefined) L.push(`| its run dir on tmpfs (bundle, conmon's files; memory, not disk) | ${fmtKiB(o.runDirBytes)} |`);
      L.push(`| creating ${o.n} containers at concurrency 8 | ${fmtMs(o.createAt8Ms)} |`, '');
    }
  }
  if (Object.keys(results.profiles).length) {
    L.push('## Where the time goes (V8 CPU profiles of the acetate process)', '');
    for (const [name, p] of Object.entries(results.profiles)) {
      L.push(`**${name}**: ${fmtMs(p.totalMs)} sampled, ${fmtMs(p.idleMs)} idle (waiting on runc/conmon/files), ${fmtMs(p.gcMs)} GC. Busy time by area:`, '');
      L.push('| area | self time | share of busy |', '| --- | ---: | ---: |');
      for (const e of p.byArea.slice(0, 8)) L.push(`| ${e.what} | ${fmtMs(e.selfMs)} | ${e.share}% |`);
      L.push('', 'Top functions:', '');
      L.push('| function | self time | share |', '| --- | ---: | ---: |');
      for (const e of p.top.slice(0, 8)) L.push(`| \`${e.what.replace(/\|/g, '\\|')}\` | ${fmtMs(e.selfMs)} | ${e.share}% |`);
      L.push('');
    }
  }
  if (results.notRun.length) L.push('## Not run', '', ...results.notRun.map((x) => `- ${x}`), '');
  return `${L.join('\n')}\n`;
}

function chart(): string {
  const panels: Panel[] = [];
  for (const op of ['create', 'destroy'] as const) {
    const rows = results.ops.filter((r) => r.op === op && r.variant !== 'bare loop');
    if (!rows.length) continue;
    panels.push({
      title: `${op}: time ÷ bare loop`,
      yLabel: '× bare loop (lower is faster)',
      groups: CFG.sizes.map((n) => ({ label: `N=${n}`, bars: rows.filter((r) => r.n === n).map((r) => ({ series: r.variant, value: r.ratio!, label: fmtRatio(r.ratio!) })) })),
      refLines: [
        { value: 1, label: 'bare loop = 1', left: true },
        ...(op === 'create' ? [{ value: 1.2, label: 'target c1 ≤ 1.2×', dashed: true }] : []),
      ],
    });
  }
  if (results.noop.length) {
    panels.push({
      title: 'no-op pass: CPU per pass',
      yLabel: 'ms CPU',
      groups: [...results.noop].sort((a, b) => a.n - b.n).map((r) => ({ label: `${r.n} containers`, bars: [{ series: 'no-op pass', value: r.cpuMs, label: fmtMs(r.cpuMs) }] })),
      refLines: [{ value: 100, label: 'target 100 ms', dashed: true, left: true }],
    });
  }
  if (results.latency) {
    const l = results.latency;
    panels.push({
      title: 'save → limit in cgroup',
      yLabel: 'ms',
      groups: [
        { label: 'p50', bars: [{ series: 'latency', value: l.p50Ms, label: fmtMs(l.p50Ms) }] },
        { label: 'p99', bars: [{ series: 'latency', value: l.p99Ms, label: fmtMs(l.p99Ms) }] },
      ],
      refLines: [
        { value: 150, label: 'p50 target 150 ms', dashed: true, left: true },
        { value: 500, label: 'p99 target 500 ms', dashed: true, left: true },
      ],
    });
  }
  if (results.rss.length) {
    panels.push({
      title: 'acetate run RSS, by containers',
      yLabel: 'MiB',
      groups: [...results.rss].sort((a, b) => a.n - b.n).map((r) => ({ label: `${r.n}`, bars: [{ series: 'RSS', value: r.medianBytes / 2 ** 20, label: fmtMiB(r.medianBytes) }] })),
      refLines: [{ value: 100e6 / 2 ** 20, label: 'target 100 MB', dashed: true, left: true }],
    });
  }
  return renderChart(panels, { title: `acetate benchmarks (${results.mode}, ${results.machine.cpus} CPUs)`, panelWidth: 280 });
}

async function writeResults(): Promise<void> {
  await mkdir(OUT, { recursive: true });
  await writeFile(path.join(OUT, 'results.json'), `${JSON.stringify({ ...results, targets: targetRows() }, null, 2)}\n`);
  await writeFile(path.join(OUT, 'results.md'), markdown());
  await writeFile(path.join(OUT, 'chart.svg'), chart());
  log(`results in ${path.relative(process.cwd(), OUT) || OUT}/results.md, results.json, chart.svg`);
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  // Issue 16's benchmarks (init, probes) are their own section: bench/servers.ts.
  if (ONLY.has('servers')) return (await import('./servers.js')).serversBench({ quick: QUICK, out: OUT });
  if (LOADED) {
    Object.assign(results, LOADED);
    await writeResults();
    return 0;
  }
  if (process.geteuid?.() !== 0) {
    console.error('acetate bench: needs root (it runs containers)');
    return 1;
  }
  const t0 = performance.now();
  results.machine.runc = (await measure('runc', ['--version'])).stdout.split('\n')[0] ?? 'runc ?';
  results.machine.conmon = (await measure('conmon', ['--version'])).stdout.split('\n')[0] ?? 'conmon ?';
  const createdRoot = !existsSync(getWorkRoot());
  await mkdir(getWorkRoot(), { recursive: true, mode: 0o700 });
  if (createdRoot) onCleanup(() => rmdir(getWorkRoot()).catch(() => undefined));
  results.machine.workDir = getWorkRoot();
  const rr = await prepareRunRoot();
  runRoot = rr.dir;
  results.machine.runRoot = rr.dir;
  results.machine.runRootFs = rr.fs;
  log(`run dirs (acetate's --run-dir, the bare loop's runc root and bundles) in ${rr.dir}: ${rr.fs}`);
  results.machine.fileCreateUs = { workDir: await fileCreateMicros(getWorkRoot()), tmp: await fileCreateMicros(os.tmpdir()) };
  log(`work dir ${getWorkRoot()}: creating a small file costs ${results.machine.fileCreateUs.workDir} µs there (${results.machine.fileCreateUs.tmp} µs in ${os.tmpdir()})`);
  log(`${QUICK ? 'quick' : 'full'} run: sizes ${CFG.sizes.join(', ')}; loop benchmarks with ${CFG.big} and ${CFG.mid} containers; results to ${OUT}`);
  await cpuGroup.create();
  onCleanup(() => cpuGroup.remove());
  let failed = false;
  try {
    if (ONLY.has('create')) {
      await opsBenchmark();
      await createProfile(CFG.sizes.includes(100) ? 100 : CFG.sizes[CFG.sizes.length - 1]!);
    }
    if (ONLY.has('noop') || ONLY.has('rss') || ONLY.has('latency')) await loopBenchmarks();
    if (ONLY.has('isolation')) {
      const n = sizesArg?.[0] ?? (QUICK ? 20 : 50);
      const kit = { newInstance, acetate, listJson, measure, cpuGroup, onCleanup, log, runRoot, baselineDir: BASELINE, n, reps: QUICK ? 2 : 3, out: OUT };
      await mkdir(OUT, { recursive: true });
      for (const r of await isolationBenchmark(kit)) log(`isolation ${r.variant}: ${r.ratio}× the bare loop with the same settings`);
    }
    if (ONLY.has('network')) await networkBenchmark({ runRoot, cpuGroup, nodeFlags: NODE_FLAGS, cli: CLI, quick: QUICK, n: sizesArg?.[0], outDir: OUT, log, onCleanup });
    if (ONLY.has('images')) await runImageBench({ out: OUT, workRoot: getWorkRoot(), runRoot, quick: QUICK, log });
    if (ONLY.has('disk')) {
      const run = (file: string, args: string[], env: Record<string, string>) => measure(file, args, { group: cpuGroup, env });
      await diskBenchmark({ n: sizesArg?.[0] ?? (QUICK ? 20 : 100), reps: QUICK ? 1 : 3, grows: QUICK ? 20 : 100, out: OUT, baselineDir: BASELINE, newInstance, newBaseline, acetate, run, log });
    }
  } catch (err) {
    failed = true;
    console.error(`acetate bench failed: ${(err as Error).stack ?? String(err)}`);
    results.notRun.push(`the run stopped early: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await cleanupAll();
    results.durationS = Math.round((performance.now() - t0) / 1000);
    // --only isolation / network / images write their own files (isolation.*, network.*, images.*), not over the others' results.
    if (['create', 'noop', 'latency', 'rss'].some((s) => ONLY.has(s))) await writeResults();
  }
  for (const t of targetRows()) log(`${t.met ? 'met' : t.met === false ? 'NOT MET' : ''}  ${t.what}: ${t.measured} (target ${t.target})`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
