/**
 * acetate's benchmarks against the physical limit (`npm run bench`; `-- --quick` for a fast run;
 * `-- --help` for the options, bench/lib/options.ts).
 *
 *   1. create N containers from one manifest change until all run: acetate apply (concurrency 1
 *      and 8) vs a bare shell loop (overlay mount + `runc run -d` per container, bench/baseline)
 *   2. a no-op reconcile pass (load + list + plan) over 100 and 1000 running containers: CPU time
 *   3. latency from saving a file that changes memory to the new limit in the cgroup (acetate run)
 *   4. destroy N containers: acetate vs the bare loop
 *   5. acetate run's RSS with 0, 100 and 1000 containers; per-container overhead on the node
 *   D. density: N long-running containers (200; --density N alone), bench/density.ts
 *   6. what isolation costs at create: seccomp and user namespaces, each against the bare loop
 *      with the same settings (bench/isolation.ts; results/isolation.{md,json})
 *   U. unprivileged create (issue 23): N containers in the default user namespace with idmapped
 *      layers, host template and image, against the bare loop with the same mappings (bench/userns.ts)
 *   and the sections with files of their own: network, images, disk, servers (bench/<name>.ts).
 *
 * Medians over repetitions; ratios to the bare loop. Results: bench/results/results.{md,json},
 * chart.svg (bench/lib/results-report.ts). Everything created is removed, also on failure or Ctrl-C.
 * This file only sequences: 1 + 4 in create-destroy.ts, 2, 3 and 5 in steady-state.ts and
 * acetate-run.ts, the two sides' setup in lib/harness.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import os from 'node:os';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { createDestroyBenchmark, createProfile } from './create-destroy.js';
import { densityBench } from './density.js';
import { diskBenchmark } from './disk.js';
import { runImageBench } from './images.js';
import { pullBench } from './pull.js';
import { isolationBenchmark } from './isolation.js';
import { usernsBench } from './userns.js';
import { Cleanups } from './lib/cleanup.js';
import { BASELINE, CLI, LOOP_NODE_FLAGS, createHarness, log, prepareRunRoot, type Harness } from './lib/harness.js';
import { openDirsForRanges } from './lib/idmap-baseline.js';
import { USAGE, benchConfig, parseBenchArgs, referenceSize, type BenchOptions } from './lib/options.js';
import { emptyResults, type Results, type RunContext } from './lib/results.js';
import { targetRows, writeResults } from './lib/results-report.js';
import { CpuGroup, fileCreateMicros, machine, measure } from './lib/sys.js';
import { getWorkRoot, setWorkRoot } from './lib/workload.js';
import { networkBenchmark } from './network.js';
import { steadyStateBenchmarks } from './steady-state.js';

async function main(argv: string[]): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(argv, { env: process.env, packageRoot: PACKAGE_ROOT });
  } catch (err) {
    console.error(`acetate bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts.workDir) setWorkRoot(opts.workDir);
  // Issue 16's benchmarks (init, probes) are their own section: bench/servers.ts.
  if (opts.only.has('servers')) return (await import('./servers.js')).serversBench({ quick: opts.quick, out: opts.out });
  // Issue 20's: probes' CPU on the loop at steady state, bench/probes.ts.
  if (opts.only.has('probes')) return (await import('./probes.js')).probesBench({ quick: opts.quick, out: opts.out, n: opts.sizes?.[0] });
  // Issue 24's Git source: its own section too (bench/git.ts).
  if (opts.only.has('git')) return (await import('./git.js')).gitBench({ quick: opts.quick, out: opts.out });
  if (opts.from) return rerender(opts, opts.from);
  if (process.geteuid?.() !== 0) {
    console.error('acetate bench: needs root (it runs containers)');
    return 1;
  }
  return measureAll(opts);
}

/** --from: re-renders results.md and chart.svg (and results.json's targets) from earlier results. */
async function rerender(opts: BenchOptions, from: string): Promise<number> {
  const loaded = JSON.parse(readFileSync(from, 'utf8')) as Results;
  const results = Object.assign(emptyResults(loaded.mode, machine()), loaded);
  await writeResults(results, benchConfig(loaded.mode === 'quick', opts.sizes), opts.out, log);
  return 0;
}

async function measureAll(opts: BenchOptions): Promise<number> {
  const { only, out, quick, sizes } = opts;
  const cfg = benchConfig(quick, sizes);
  const results = emptyResults(quick ? 'quick' : 'full', machine());
  const ctx: RunContext = { cfg, only, results };
  const cleanups = new Cleanups();
  cleanups.onSignals(log);
  const t0 = performance.now();
  results.machine.runc = (await measure('runc', ['--version'])).stdout.split('\n')[0] ?? 'runc ?';
  results.machine.conmon = (await measure('conmon', ['--version'])).stdout.split('\n')[0] ?? 'conmon ?';
  const createdRoot = !existsSync(getWorkRoot());
  await mkdir(getWorkRoot(), { recursive: true, mode: 0o700 });
  if (createdRoot) cleanups.add(() => rmdir(getWorkRoot()).catch(() => undefined));
  results.machine.workDir = getWorkRoot();
  let h: Harness;
  try {
    const rr = await prepareRunRoot(opts.runRoot, cleanups);
    results.machine.runRoot = rr.dir;
    results.machine.runRootFs = rr.fs;
    log(`run dirs (acetate's --run-dir, the bare loop's runc root and bundles) in ${rr.dir}: ${rr.fs}`);
    results.machine.fileCreateUs = { workDir: await fileCreateMicros(getWorkRoot()), tmp: await fileCreateMicros(os.tmpdir()) };
    log(
      `work dir ${getWorkRoot()}: creating a small file costs ${results.machine.fileCreateUs.workDir} µs there (${results.machine.fileCreateUs.tmp} µs in ${os.tmpdir()})`,
    );
    log(`${quick ? 'quick' : 'full'} run: sizes ${cfg.sizes.join(', ')}; loop benchmarks with ${cfg.big} and ${cfg.mid} containers; results to ${out}`);
    const cpuGroup = new CpuGroup(`acetate-bench-${process.pid}`);
    await cpuGroup.create();
    cleanups.add(() => cpuGroup.remove());
    h = createHarness({ runRoot: rr.dir, cpuGroup, cleanups });
  } catch (err) {
    // Set-up failed: nothing measured, so no results are written over the last ones.
    await cleanups.runAll();
    throw err;
  }
  let failed = false;
  try {
    await runSections(ctx, opts, h);
  } catch (err) {
    failed = true;
    console.error(`acetate bench failed: ${(err as Error).stack ?? String(err)}`);
    results.notRun.push(`the run stopped early: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await cleanups.runAll();
    results.durationS = Math.round((performance.now() - t0) / 1000);
    // --only isolation / network / images / disk write their own files (isolation.*, network.*, ...), not over the others' results.
    if ((['create', 'noop', 'latency', 'rss'] as const).some((s) => only.has(s))) await writeResults(results, cfg, out, log);
  }
  for (const t of targetRows(results, cfg)) log(`${t.met ? 'met' : t.met === false ? 'NOT MET' : ''}  ${t.what}: ${t.measured} (target ${t.target})`);
  return failed ? 1 : 0;
}

async function runSections(ctx: RunContext, opts: BenchOptions, h: Harness): Promise<void> {
  const { cfg, only } = ctx;
  const { out, quick, sizes } = opts;
  if (only.has('create')) {
    await createDestroyBenchmark(ctx, h);
    await createProfile(ctx, h, referenceSize(cfg));
  }
  if (only.has('noop') || only.has('rss') || only.has('latency')) await steadyStateBenchmarks(ctx, h);
  if (only.has('density')) {
    // Issue 25: N long-running containers, their cost, acetate's behaviour with them (bench/density.ts).
    await mkdir(out, { recursive: true });
    await densityBench(h, { n: opts.density, quick, out, hostUsers: opts.densityHostUsers, workRoot: getWorkRoot() });
  }
  if (only.has('isolation')) {
    const n = sizes?.[0] ?? (quick ? 20 : 50);
    const onCleanup = (fn: () => Promise<void>) => h.cleanups.add(fn);
    const kit = { ...h, measure, onCleanup, log, baselineDir: BASELINE, n, reps: quick ? 2 : 3, out };
    await mkdir(out, { recursive: true });
    for (const r of await isolationBenchmark(kit)) log(`isolation ${r.variant}: ${r.ratio}× the bare loop with the same settings`);
  }
  if (only.has('userns')) {
    // Issue 23: N unprivileged containers (100; --quick 20), host template and image (bench/userns.ts).
    await usernsBench(h, { n: sizes?.[0] ?? (quick ? 20 : 100), reps: quick ? 1 : 2, out, workRoot: getWorkRoot() });
  }
  if (only.has('network')) {
    const onCleanup = (fn: () => Promise<void>) => h.cleanups.add(fn);
    const portChange = process.env.ACETATE_BENCH_NETWORK_PORT_CHANGE !== '0';
    // Its containers run in user namespaces (the default): their roots traverse the work and run roots.
    const restore = await openDirsForRanges(h, [getWorkRoot(), h.runRoot]);
    await networkBenchmark({
      runRoot: h.runRoot,
      cpuGroup: h.cpuGroup,
      loopNodeFlags: LOOP_NODE_FLAGS,
      cli: CLI,
      quick,
      n: sizes?.[0],
      portChange,
      outDir: out,
      log,
      onCleanup,
    }).finally(restore);
  }
  if (only.has('images')) await runImageBench({ out, workRoot: getWorkRoot(), runRoot: h.runRoot, quick, log });
  if (only.has('pull')) await pullBench({ out, workRoot: getWorkRoot(), quick, mib: sizes?.[0], log });
  if (only.has('disk')) {
    const run = (file: string, args: string[], env: Record<string, string>) => measure(file, args, { group: h.cpuGroup, env });
    await diskBenchmark({ n: sizes?.[0] ?? (quick ? 20 : 100), reps: quick ? 1 : 3, grows: quick ? 20 : 100, out, baselineDir: BASELINE, ...h, run, log });
  }
}

process.exitCode = await main(process.argv.slice(2));
