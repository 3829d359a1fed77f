/**
 * The steady-state benchmarks, over one acetate instance with many running containers (1000, then
 * 100; 200 and 50 with --quick), then none: 2, the no-op reconcile pass (load + list + plan, CPU,
 * profiled); 5, acetate run's RSS and loop CPU at each size, and what one container costs the node;
 * 3, save → cgroup latency (acetate-run.ts).
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { latencyBenchmark, loopWindow } from './acetate-run.js';
import { CLI, LOOP_NODE_FLAGS, NOOP, check, log, type Harness, type Instance } from './lib/harness.js';
import { summarizeProfile } from './lib/profile.js';
import type { RunContext } from './lib/results.js';
import { fmtKiB, fmtMs, median, quantile, round } from './lib/stats.js';
import { duBytes, findProcs, measure, pssBytes, vmRssBytes } from './lib/sys.js';
import { containerYaml, nameOf, tmpDir, writeFilePerContainer } from './lib/workload.js';
import type { PassSample } from './noop-pass.js';

/** 2: CPU of no-op passes in one process (bench/noop-pass.ts), and its profile if asked. */
async function noopPass(ctx: RunContext, inst: Instance, n: number, profile: boolean): Promise<void> {
  const { cfg, results } = ctx;
  const r = await measure(process.execPath, [...LOOP_NODE_FLAGS, NOOP, inst.stateDir, inst.dir, String(cfg.noopPasses)], { timeoutMs: 600_000, env: inst.env });
  check(r.code === 0, `noop-pass failed: ${r.stderr}`);
  const { first, samples } = JSON.parse(r.stdout) as { first: PassSample; samples: PassSample[] };
  check(
    samples.every((s) => s.actions === 0 && s.unchanged === n),
    `the no-op pass is not a no-op: ${JSON.stringify(samples[0])}`,
  );
  const m = (f: (s: PassSample) => number) => round(median(samples.map(f)), 1);
  results.noop.push({
    n,
    passes: samples.length,
    cpuMs: m((s) => s.cpuMs),
    cpuP90Ms: round(
      quantile(
        samples.map((s) => s.cpuMs),
        0.9,
      ),
      1,
    ),
    firstCpuMs: round(first.cpuMs, 1),
    wallMs: m((s) => s.wallMs),
    loadCpuMs: m((s) => s.loadCpuMs),
    listCpuMs: m((s) => s.listCpuMs),
    planCpuMs: m((s) => s.planCpuMs),
    runcListCpuMs: m((s) => s.childCpuMs),
    runcListWallMs: m((s) => s.listWallMs),
  });
  log(
    `no-op pass over ${n}: ${m((s) => s.cpuMs)} ms CPU (load ${m((s) => s.loadCpuMs)}, list ${m((s) => s.listCpuMs)}, plan ${m((s) => s.planCpuMs)}), ${m((s) => s.wallMs)} ms wall`,
  );
  if (profile) {
    const profDir = await tmpDir('acetate-bench-prof-');
    try {
      const p = await measure(
        process.execPath,
        [...LOOP_NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', profDir, NOOP, inst.stateDir, inst.dir, String(cfg.noopPasses)],
        { env: inst.env },
      );
      check(p.code === 0, p.stderr);
      const prof = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
      if (prof) results.profiles[`no-op pass over ${n} (${cfg.noopPasses + 2} passes)`] = await summarizeProfile(path.join(profDir, prof));
    } finally {
      await rm(profDir, { recursive: true, force: true });
    }
  }
}

/** 5b: what one more container costs the node. */
async function overhead(ctx: RunContext, h: Harness, inst: Instance, n: number, createAt8Ms: number): Promise<void> {
  const conmons = (await findProcs('conmon', inst.stateDir)).slice(0, 50);
  const inits: number[] = [];
  for (const c of (await h.listJson(inst)).slice(0, 50)) if (c.pid) inits.push(c.pid);
  const ip = instancePaths(inst.stateDir, inst.runDir);
  // A fresh private area: a container created just now, before it wrote anything.
  const fresh = path.join(inst.dir, 'fresh.yaml');
  await writeFile(fresh, containerYaml('fresh'));
  const r = await measure(process.execPath, [CLI, '--state-dir', inst.stateDir, 'apply', '-f', inst.dir], { env: inst.env });
  check(r.code === 0, r.stderr);
  const cdir = path.join(ip.containersDir, 'default_fresh');
  const privateAreaBytes = (await duBytes(path.join(cdir, 'upper'))) + (await duBytes(path.join(cdir, 'work')));
  const containerDirBytes = Number((await measure('du', ['-s', '-x', '--block-size=1', cdir])).stdout.split(/\s+/)[0]);
  const runDirBytes = Number((await measure('du', ['-s', '-x', '--block-size=1', path.join(ip.runContainersDir, 'default_fresh')])).stdout.split(/\s+/)[0]);
  await rm(fresh);
  const d = await measure(process.execPath, [CLI, '--state-dir', inst.stateDir, 'apply', '-f', inst.dir], { env: inst.env });
  check(d.code === 0, d.stderr);
  const rss = await Promise.all(conmons.map(vmRssBytes));
  const pss = await Promise.all(conmons.map(pssBytes));
  ctx.results.overhead = {
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
  log(
    `per container: conmon RSS ${fmtKiB(median(rss))} (PSS ${fmtKiB(median(pss))}), private area ${fmtKiB(privateAreaBytes)}, container dir ${fmtKiB(containerDirBytes)}, run dir ${fmtKiB(runDirBytes)}`,
  );
}

export async function steadyStateBenchmarks(ctx: RunContext, h: Harness): Promise<void> {
  const { cfg, only } = ctx;
  const inst = await h.newInstance();
  try {
    // 1000 (or 200 in quick mode) running containers, one file each.
    await writeFilePerContainer(inst.dir, cfg.big);
    const c = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8']);
    check(c.code === 0, `creating ${cfg.big} failed: ${c.stderr}`);
    log(`created ${cfg.big} containers in ${fmtMs(c.wallMs)} (concurrency 8)`);
    if (only.has('rss')) await overhead(ctx, h, inst, cfg.big, c.wallMs);
    if (only.has('noop')) await noopPass(ctx, inst, cfg.big, true);
    if (only.has('rss')) await loopWindow(ctx, h, inst, cfg.big);
    // Down to 100 (or 50).
    for (let i = cfg.mid; i < cfg.big; i++) await rm(path.join(inst.dir, `${nameOf(i)}.yaml`));
    const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8']);
    check(d.code === 0, d.stderr);
    if (only.has('noop')) await noopPass(ctx, inst, cfg.mid, true);
    if (only.has('rss')) await loopWindow(ctx, h, inst, cfg.mid);
    if (only.has('latency')) await latencyBenchmark(ctx, h, inst, cfg.mid);
    // Nothing left.
    for (let i = 0; i < cfg.mid; i++) await rm(path.join(inst.dir, `${nameOf(i)}.yaml`));
    const z = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', '8']);
    check(z.code === 0, z.stderr);
    if (only.has('rss')) await loopWindow(ctx, h, inst, 0);
  } finally {
    await inst.cleanup();
  }
}
