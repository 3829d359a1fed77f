/**
 * The benchmarks under `acetate run` (the long-running loop): its RSS and CPU over a quiet window
 * (5), and 3: the latency from saving a manifest that changes memory to the new limit in the
 * container's cgroup.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { CLI, LOOP_NODE_FLAGS, log, type Harness, type Instance } from './lib/harness.js';
import type { LatencyResult, RunContext } from './lib/results.js';
import { fmtMiB, fmtMs, median, quantile, round } from './lib/stats.js';
import { procCpuMs, vmRssBytes } from './lib/sys.js';
import { containerYaml, nameOf, saveAtomically } from './lib/workload.js';

export interface Loop {
  pid: number;
  out: () => string;
  stop: () => Promise<void>;
}

/**
 * `acetate run` on the instance, once ready. The metrics listener on port 0 (benchmarks run side by
 * side) and JSON logs (read back for the loop's own account); `--concurrency 8` unless `defaults`
 * (the density benchmark: acetate's defaults otherwise).
 */
export async function startLoop(h: Harness, inst: Instance, extra: string[] = [], opts: { defaults?: boolean } = {}): Promise<Loop> {
  const child = spawn(
    process.execPath,
    [
      ...LOOP_NODE_FLAGS,
      CLI,
      '--state-dir',
      inst.stateDir,
      'run',
      '-f',
      inst.dir,
      '--metrics-addr',
      '0',
      '--log-format',
      'json',
      ...(opts.defaults ? [] : ['--concurrency', '8']),
      ...extra,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...inst.env },
    },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const stop = h.cleanups.add(async () => {
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
export async function loopWindow(ctx: RunContext, h: Harness, inst: Instance, n: number): Promise<void> {
  const { cfg, results } = ctx;
  const loop = await startLoop(h, inst, ['--resync', cfg.resync]);
  try {
    const rss: number[] = [];
    const cpu0 = await procCpuMs(loop.pid);
    const t0 = performance.now();
    while (performance.now() - t0 < cfg.rssWindowS * 1000) {
      rss.push(await vmRssBytes(loop.pid));
      await new Promise((r) => setTimeout(r, 250));
    }
    const cpuMs = (await procCpuMs(loop.pid)) - cpu0;
    const seconds = (performance.now() - t0) / 1000;
    const resyncS = Number(cfg.resync.replace('s', ''));
    results.rss.push({ n, medianBytes: median(rss), maxBytes: Math.max(...rss) });
    results.loop.push({
      n,
      windowS: round(seconds, 1),
      resync: cfg.resync,
      cpuMsPerSecond: round(cpuMs / seconds, 1),
      cpuMsPerResync: round((cpuMs / seconds) * resyncS),
      rssBytes: median(rss),
    });
    log(
      `acetate run with ${n} containers: RSS ${fmtMiB(median(rss))} (max ${fmtMiB(Math.max(...rss))}), CPU ${round(cpuMs / seconds, 1)} ms/s with --resync ${cfg.resync}`,
    );
  } finally {
    await loop.stop();
  }
}

/** 3: save a file changing memory; time until memory.limit_in_bytes shows it (polled every ~1 ms). */
export async function latencyBenchmark(ctx: RunContext, h: Harness, inst: Instance, n: number): Promise<void> {
  const loop = await startLoop(h, inst);
  try {
    ctx.results.latency = await editLatency(loop, inst, n, ctx.cfg.edits);
  } finally {
    await loop.stop();
  }
  const l = ctx.results.latency;
  log(`latency file save → cgroup limit (${n} containers, ${l.edits} edits): p50 ${fmtMs(l.p50Ms)}, p99 ${fmtMs(l.p99Ms)}, ${l.failures} not seen within 10 s`);
}

/**
 * `edits` atomic saves (write + rename, as an editor saves) of one-container files nameOf(i) under
 * a running loop, each changing memory between 48Mi and 40Mi (or the given pair); for each, the
 * time until the container's memory.limit_in_bytes shows it. The loop is the caller's.
 */
export async function editLatency(
  loop: Loop,
  inst: Instance,
  n: number,
  edits: number,
  o: { yamlOf?: (name: string, memoryMi: number) => string; memoryMi?: [number, number]; nameOf?: (i: number) => string } = {},
): Promise<LatencyResult> {
  const yamlOf = o.yamlOf ?? ((name: string, memoryMi: number) => containerYaml(name, { memoryMi }));
  const memoryMi = o.memoryMi ?? [48, 40];
  const nameOfI = o.nameOf ?? nameOf;
  const ip = instancePaths(inst.stateDir, inst.runDir);
  const samples: number[] = [];
  const detect: number[] = [];
  const update: number[] = [];
  let failures = 0;
  for (let e = 0; e < edits; e++) {
    const i = (e * 7919) % n;
    const name = nameOfI(i);
    const mi = memoryMi[e % 2]!;
    const limitFile = `/sys/fs/cgroup/memory${ip.cgroupParent}/default_${name}/memory.limit_in_bytes`;
    const want = String(mi * 2 ** 20);
    const logOffset = loop.out().length;
    const wall0 = Date.now();
    const t0 = performance.now();
    await saveAtomically(path.join(inst.dir, `${name}.yaml`), yamlOf(name, mi));
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
  return {
    n,
    edits,
    p50Ms: round(quantile(samples, 0.5), 1),
    p90Ms: round(quantile(samples, 0.9), 1),
    p99Ms: round(quantile(samples, 0.99), 1),
    maxMs: round(Math.max(...samples), 1),
    failures,
    detectMs: round(median(detect), 1),
    runcUpdateMs: round(median(update), 1),
    samplesMs: samples.map((s) => round(s, 1)),
  };
}
