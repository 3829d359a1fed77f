/**
 * The main benchmarks' report: the targets (met or not), results.md (tables), chart.svg, and
 * results.json (the results plus the targets), all from the recorded Results.
 */
import { densityBlockOf } from './density-report.js';
import { blockOf, USERNS_END, USERNS_START } from './userns-report.js';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderChart, type Panel } from './chart.js';
import { referenceSize, type BenchConfig } from './options.js';
import type { Results } from './results.js';
import { fmtKiB, fmtMiB, fmtMs, fmtRatio } from './stats.js';

export interface TargetRow {
  what: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

export function targetRows(results: Results, cfg: BenchConfig): TargetRow[] {
  const rows: TargetRow[] = [];
  const op = (o: string, n: number, v: string) => results.ops.find((r) => r.op === o && r.n === n && r.variant === v);
  const n100 = referenceSize(cfg);
  const c1 = op('create', n100, 'acetate c1');
  const c8 = op('create', n100, 'acetate c8');
  if (c1) rows.push({ what: `create ${n100}, concurrency 1 vs bare loop`, target: '≤ 1.2×', measured: fmtRatio(c1.ratio!), met: c1.ratio! <= 1.2 });
  if (c8) rows.push({ what: `create ${n100}, concurrency 8 vs bare loop`, target: '< 1×', measured: fmtRatio(c8.ratio!), met: c8.ratio! < 1 });
  const big = results.noop.find((r) => r.n === cfg.big);
  const mid = results.noop.find((r) => r.n === cfg.mid);
  if (big) rows.push({ what: `no-op pass CPU, ${cfg.big} containers`, target: '< 100 ms', measured: fmtMs(big.cpuMs), met: big.cpuMs < 100 });
  if (big && mid) {
    const growth = big.cpuMs / mid.cpuMs;
    rows.push({
      what: `no-op pass growth ${cfg.mid} → ${cfg.big} (${cfg.big / cfg.mid}× containers)`,
      target: `≈ ${cfg.big / cfg.mid}× (linear) or less`,
      measured: fmtRatio(growth),
      met: growth <= (cfg.big / cfg.mid) * 1.25,
    });
  }
  if (results.latency) {
    rows.push({
      what: 'save → limit in cgroup, p50',
      target: '< 150 ms',
      measured: fmtMs(results.latency.p50Ms),
      met: results.latency.p50Ms < 150 && results.latency.failures === 0,
    });
    rows.push({
      what: 'save → limit in cgroup, p99',
      target: '< 500 ms',
      measured: fmtMs(results.latency.p99Ms),
      met: results.latency.p99Ms < 500 && results.latency.failures === 0,
    });
  }
  const rssBig = results.rss.find((r) => r.n === cfg.big);
  if (rssBig)
    rows.push({ what: `acetate run RSS, ${cfg.big} containers`, target: '< 100 MB', measured: fmtMiB(rssBig.medianBytes), met: rssBig.medianBytes < 100e6 });
  return rows;
}

export function markdown(results: Results, cfg: BenchConfig): string {
  const L: string[] = [];
  const m = results.machine;
  L.push(`# acetate benchmark results (${results.mode})`, '');
  L.push(
    `${results.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${m.cpus} × ${m.cpuModel} · ${m.memGiB} GiB · Linux ${m.kernel} · Node ${m.node} · ${m.runc} · ${m.conmon} · took ${Math.round(results.durationS / 60)} min`,
    '',
  );
  if (m.workDir && m.fileCreateUs) {
    L.push(
      `State and work dirs of both acetate and the bare loop in \`${m.workDir}\`, where creating a small file (write + rename) cost ${m.fileCreateUs.workDir} µs (${m.fileCreateUs.tmp} µs in ${os.tmpdir()}).${m.runRoot ? ` Run dirs (acetate's \`--run-dir\`, the bare loop's runc root and bundles) in \`${m.runRoot}\`: ${m.runRootFs}.` : ''}`,
      '',
    );
  }
  L.push('How to read this: docs/benchmarks.md. Times are medians over repetitions; ratios are to the bare loop (< 1 is faster than it).', '');
  L.push('## Targets', '', '| what | target | measured | |', '| --- | --- | --- | --- |');
  for (const t of targetRows(results, cfg)) L.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === undefined ? '' : t.met ? 'met' : '**not met**'} |`);
  L.push('');
  if (results.ops.length) {
    for (const op of ['create', 'destroy'] as const) {
      L.push(`## ${op === 'create' ? '1. Create N containers until all run' : '4. Destroy N containers'}`, '');
      L.push(
        '| N | variant | reps | median | × bare loop | per container | CPU per container (all processes) | acetate process CPU per container |',
        '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      );
      for (const r of results.ops.filter((x) => x.op === op)) {
        L.push(
          `| ${r.n} | ${r.variant} | ${r.samplesMs.length} | ${fmtMs(r.medianMs)} | ${fmtRatio(r.ratio!)} | ${fmtMs(r.medianMs / r.n)} | ${fmtMs(r.cpuPerContainerMs)} | ${r.ownCpuPerContainerMs !== undefined ? fmtMs(r.ownCpuPerContainerMs) : '–'} |`,
        );
      }
      L.push('');
    }
  }
  if (results.noop.length) {
    L.push('## 2. No-op reconcile pass (load + list + plan, nothing to do)', '');
    L.push(
      '| containers | passes | CPU (median) | CPU p90 | load | list | plan | wall | first pass, empty caches | runc child CPU |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const r of results.noop)
      L.push(
        `| ${r.n} | ${r.passes} | ${fmtMs(r.cpuMs)} | ${fmtMs(r.cpuP90Ms)} | ${fmtMs(r.loadCpuMs)} | ${fmtMs(r.listCpuMs)} | ${fmtMs(r.planCpuMs)} | ${fmtMs(r.wallMs)} | ${r.firstCpuMs === undefined ? '–' : fmtMs(r.firstCpuMs)} | ${fmtMs(r.runcListCpuMs)} |`,
      );
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
    L.push(
      '| edits | p50 | p90 | p99 | max | not seen in 10 s | loop saw the change (median) | runc update (median) |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    L.push(
      `| ${l.edits} | ${fmtMs(l.p50Ms)} | ${fmtMs(l.p90Ms)} | ${fmtMs(l.p99Ms)} | ${fmtMs(l.maxMs)} | ${l.failures} | ${fmtMs(l.detectMs)} | ${fmtMs(l.runcUpdateMs)} |`,
      '',
    );
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

export function chart(results: Results, cfg: BenchConfig): string {
  const panels: Panel[] = [];
  for (const op of ['create', 'destroy'] as const) {
    const rows = results.ops.filter((r) => r.op === op && r.variant !== 'bare loop');
    if (!rows.length) continue;
    panels.push({
      title: `${op}: time ÷ bare loop`,
      yLabel: '× bare loop (lower is faster)',
      groups: cfg.sizes.map((n) => ({
        label: `N=${n}`,
        bars: rows.filter((r) => r.n === n).map((r) => ({ series: r.variant, value: r.ratio!, label: fmtRatio(r.ratio!) })),
      })),
      refLines: [{ value: 1, label: 'bare loop = 1', left: true }, ...(op === 'create' ? [{ value: 1.2, label: 'target c1 ≤ 1.2×', dashed: true }] : [])],
    });
  }
  if (results.noop.length) {
    panels.push({
      title: 'no-op pass: CPU per pass',
      yLabel: 'ms CPU',
      groups: [...results.noop]
        .sort((a, b) => a.n - b.n)
        .map((r) => ({ label: `${r.n} containers`, bars: [{ series: 'no-op pass', value: r.cpuMs, label: fmtMs(r.cpuMs) }] })),
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
      groups: [...results.rss]
        .sort((a, b) => a.n - b.n)
        .map((r) => ({ label: `${r.n}`, bars: [{ series: 'RSS', value: r.medianBytes / 2 ** 20, label: fmtMiB(r.medianBytes) }] })),
      refLines: [{ value: 100e6 / 2 ** 20, label: 'target 100 MB', dashed: true, left: true }],
    });
  }
  return renderChart(panels, { title: `acetate benchmarks (${results.mode}, ${results.machine.cpus} CPUs)`, panelWidth: 280 });
}

/** Writes results.json, results.md and chart.svg to out. */
export async function writeResults(results: Results, cfg: BenchConfig, out: string, log: (m: string) => void): Promise<void> {
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'results.json'), `${JSON.stringify({ ...results, targets: targetRows(results, cfg) }, null, 2)}\n`);
  // The density benchmark's table (written by its own run) stays in results.md.
  const density = await densityBlockOf(path.join(out, 'results.md'));
  // So does the unprivileged-create benchmark's (bench/userns.ts).
  const userns = await blockOf(path.join(out, 'results.md'), USERNS_START, USERNS_END);
  await writeFile(path.join(out, 'results.md'), markdown(results, cfg) + (density ? `\n${density}` : '') + (userns ? `\n${userns}` : ''));
  await writeFile(path.join(out, 'chart.svg'), chart(results, cfg));
  log(`results in ${path.relative(process.cwd(), out) || out}/results.md, results.json, chart.svg`);
}
