/**
 * The density benchmark's results (bench/density.ts): their shape, the targets of issue 25 with
 * "met"/"not met", bench/results/density.{json,md}, and the same table spliced into results.md
 * between markers (kept there when the main run rewrites results.md, see results-report.ts).
 */
import { DEFAULT_RESYNC_MS } from '../../src/controller/loop.js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { NodeFacts } from '../../src/runtime/runc/node-limits.js';
import type { KernelMemory, ProcessMemory } from './node-memory.js';
import type { LatencyResult } from './results.js';
import { fmtMs, round } from './stats.js';
import type { machine } from './sys.js';

export interface DensityCreate {
  variant: 'bare loop' | 'acetate';
  n: number;
  concurrency: number;
  createMs: number;
  /** CPU of the command and everything it started (not the containers). */
  cpuMs: number;
  destroyMs?: number;
  memory?: { kernel: KernelMemory; processes: ProcessMemory; perContainerBytes: number };
  diskPerContainerBytes?: number;
}

export interface DensityResults {
  startedAt: string;
  n: number;
  machine: ReturnType<typeof machine>;
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  /** Measured in acetate's default (a user namespace per container, bare loop create-idmap.sh); false: --density-host-users (node ids, create.sh). Absent in older results: node ids. */
  userNamespaces?: boolean;
  nodeFacts?: NodeFacts;
  /** What acetate's node-limit check said about N more containers (nothing: they fit). */
  nodeLimits?: string[];
  /** RLIMIT_NOFILE (soft/hard) of the benchmark, which acetate and runc inherit. */
  nofile?: string;
  /** What node-limits.ts counts, per container: the instance's threads, `_ses.` keyrings, open fds (an upper bound of files), memory cgroups. */
  limitsPerContainer?: { tasks: number; keys: number; files: number; memoryCgroups: number };
  bare?: DensityCreate;
  acetate?: DensityCreate;
  /** cpuMsPerSecond: the steady window; firstMinuteCpuMsPerSecond: the window before it, from 5 s after ready (absent in older results: theirs was that one). */
  loop?: { windowS: number; cpuMsPerSecond: number; firstMinuteCpuMsPerSecond?: number; rssBytes: number; rssMaxBytes: number };
  latency?: LatencyResult;
  getMs?: number;
  planMs?: number;
  /** CPU of get and plan (medians), and a bare `node -e 0` run beside them (wall, CPU). */
  getPlanCpu?: { getMs: number; planMs: number; bareNodeWallMs: number; bareNodeCpuMs: number };
  /** get and plan with --direct: every container's files read, as without a running loop (medians). */
  getPlanDirect?: { getMs: number; getCpuMs: number; planMs: number; planCpuMs: number };
  noop?: { wallMs: number; cpuMs: number };
  kernelAfterTeardown?: KernelMemory;
  /** Kernel memory after teardown against before the create: what N containers left behind. */
  kernelNetAfterTeardown?: KernelMemory;
  /** Create at 100 (or N), concurrency 1 and 8, bare loop and acetate. */
  creates: DensityCreate[];
  notes: string[];
}

export interface DensityTarget {
  what: string;
  target: string;
  measured: string;
  met?: boolean;
}

const MB = 1e6;
const mb = (b: number) => `${(b / MB).toFixed(2)} MB`;

function createRow(r: DensityResults, variant: DensityCreate['variant'], c: number): DensityCreate | undefined {
  return r.creates.find((x) => x.variant === variant && x.concurrency === c);
}

export function densityTargets(r: DensityResults): DensityTarget[] {
  const t: DensityTarget[] = [];
  const ratio = (a?: DensityCreate, b?: DensityCreate) => (a && b ? round(a.createMs / b.createMs, 2) : NaN);
  if (r.acetate && r.bare) {
    t.push({
      what: `all ${r.n} running (acetate apply, default concurrency ${r.acetate.concurrency})`,
      target: 'every container running',
      measured: `${fmtMs(r.acetate.createMs)}, ${ratio(r.acetate, r.bare)}× the bare loop at c${r.bare.concurrency} (${fmtMs(r.bare.createMs)})`,
      met: true,
    });
  }
  const a1 = createRow(r, 'acetate', 1);
  const b1 = createRow(r, 'bare loop', 1);
  const a8 = createRow(r, 'acetate', 8);
  const b8 = createRow(r, 'bare loop', 8);
  if (a1 && b1)
    t.push({ what: `create ${a1.n}, concurrency 1 vs the bare loop at 1`, target: '≤ 1.1×', measured: `${ratio(a1, b1)}×`, met: ratio(a1, b1) <= 1.1 });
  if (a8 && b1)
    t.push({ what: `create ${a8.n}, concurrency 8 vs the bare loop at 1`, target: '≤ 0.5×', measured: `${ratio(a8, b1)}×`, met: ratio(a8, b1) <= 0.5 });
  if (a8 && b8) t.push({ what: `create ${a8.n}, concurrency 8 vs the bare loop at 8`, target: '(reference)', measured: `${ratio(a8, b8)}×` });
  if (r.loop) {
    // Neither window holds the loop's resync (every 5 min by default), which reads every container
    // as `plan --direct` does: that command's CPU (Node's start included), spread over the period,
    // is a bound of what the resync adds, and the target is checked with it.
    const resync = r.getPlanDirect ? r.getPlanDirect.planCpuMs / (DEFAULT_RESYNC_MS / 1000) : undefined;
    const bound = resync === undefined ? undefined : Math.round((r.loop.cpuMsPerSecond + resync) * 10) / 10;
    t.push({
      what: `acetate run CPU at steady state, ${r.n} containers`,
      target: '< 10 ms/s',
      measured:
        bound === undefined
          ? `${r.loop.cpuMsPerSecond} ms/s between resyncs`
          : `${r.loop.cpuMsPerSecond} ms/s between resyncs; at most ${bound} ms/s with its resync every ${DEFAULT_RESYNC_MS / 60_000} min (a full read's CPU, ${fmtMs(r.getPlanDirect!.planCpuMs)}, over the period)`,
      met: (bound ?? r.loop.cpuMsPerSecond) < 10,
    });
    if (r.loop.firstMinuteCpuMsPerSecond !== undefined)
      t.push({
        what: `acetate run CPU in the window before it (from 5 s after its first sync: the start's tail), ${r.n} containers`,
        target: '(reference)',
        measured: `${r.loop.firstMinuteCpuMsPerSecond} ms/s`,
      });
    t.push({ what: `acetate run RSS, ${r.n} containers`, target: '< 150 MB', measured: mb(r.loop.rssBytes), met: r.loop.rssBytes < 150 * MB });
  }
  if (r.acetate?.memory) {
    const m = r.acetate.memory;
    t.push({
      what: 'node memory per container (PSS of conmon + container, kernel growth)',
      target: '< 1.5 MB',
      measured: mb(m.perContainerBytes),
      met: m.perContainerBytes < 1.5 * MB,
    });
  }
  if (r.latency)
    t.push({ what: `atomic save → new limit in the cgroup, p50 at ${r.n}`, target: '< 50 ms', measured: fmtMs(r.latency.p50Ms), met: r.latency.p50Ms < 50 });
  const c = r.getPlanCpu;
  const cpuNote = (ms: number | undefined) =>
    c && ms !== undefined ? ` (CPU ${fmtMs(ms)}; bare node ${fmtMs(c.bareNodeWallMs)}, CPU ${fmtMs(c.bareNodeCpuMs)})` : '';
  if (r.getMs !== undefined)
    t.push({ what: `acetate get, ${r.n} containers`, target: '< 300 ms (at 2,500)', measured: `${fmtMs(r.getMs)}${cpuNote(c?.getMs)}`, met: r.getMs < 300 });
  if (r.planMs !== undefined)
    t.push({
      what: `no-op acetate plan, ${r.n} containers`,
      target: '< 300 ms (at 2,500)',
      measured: `${fmtMs(r.planMs)}${cpuNote(c?.planMs)}`,
      met: r.planMs < 300,
    });
  const d = r.getPlanDirect;
  if (d) {
    t.push({
      what: `acetate get --direct (every container read; no loop to ask), ${r.n}`,
      target: '(reference)',
      measured: `${fmtMs(d.getMs)} (CPU ${fmtMs(d.getCpuMs)})`,
    });
    t.push({ what: `no-op acetate plan --direct, ${r.n}`, target: '(reference)', measured: `${fmtMs(d.planMs)} (CPU ${fmtMs(d.planCpuMs)})` });
  }
  if (r.acetate?.destroyMs !== undefined)
    t.push({ what: `teardown of ${r.n}`, target: 'node left clean', measured: `${fmtMs(r.acetate.destroyMs)}, nothing left (leaks.ts)`, met: true });
  return t;
}

const kib = (b: number) => `${round(b / 1024)} KiB`;

function memoryLines(label: string, c: DensityCreate): string[] {
  const m = c.memory!;
  const per = (b: number) => kib(b / c.n);
  return [
    `| ${label} | ${per(m.processes.conmonPssBytes)} | ${per(m.processes.containerPssBytes)} | ${per(m.kernel.slabBytes)} | ${per(m.kernel.kernelStackBytes)} | ${per(m.kernel.pageTablesBytes)} | ${per(m.kernel.percpuBytes)} | **${kib(m.perContainerBytes)}** | ${per(-m.kernel.memAvailableBytes)} |`,
  ];
}

export function densityMarkdown(r: DensityResults): string {
  const L: string[] = [];
  L.push(`## Density: ${r.n} containers (\`npm run bench -- --density ${r.n}\`)`, '');
  L.push(
    `${r.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${r.machine.cpus} × ${r.machine.cpuModel.split(' ').slice(0, 2).join(' ')} · ${r.machine.memGiB} GiB · load average ${r.loadAvgStart.join(' ')} at the start, ${(r.loadAvgEnd ?? []).join(' ')} at the end. Host template, \`sh -c 'while :; do sleep 3600; done'\`, memory 16Mi, pids 16, network none. ${densityMode(r)}`,
    '',
  );
  L.push('| what | target | measured | |', '| --- | --- | --- | --- |');
  for (const t of densityTargets(r)) L.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === undefined ? '' : t.met ? 'met' : '**not met**'} |`);
  L.push('');
  if (r.nofile) L.push(`Open files limit of the benchmark (inherited by acetate, conmon and runc): ${r.nofile} (soft/hard).`, '');
  if (r.nodeLimits?.length) L.push(`Node limits for ${r.n} more: ${r.nodeLimits.join('; ')}`, '');
  if (r.limitsPerContainer) {
    const p = r.limitsPerContainer;
    L.push(
      `What each container holds of the node's limits (counted on the instance's processes, keyrings and cgroups ÷ N; acetate's check assumes ${'`'}PER_CONTAINER${'`'} in src/runtime/runc/node-limits.ts): ${p.tasks} tasks (kernel.pid_max, threads-max), ${p.keys} session keyrings (kernel.keys.root_maxkeys/maxbytes), ${p.files} open fds (fs.file-max), ${p.memoryCgroups} memory cgroups.`,
      '',
    );
  }
  L.push('| create | N | concurrency | all running | per container | CPU (all processes) | destroy |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of [r.bare, r.acetate, ...r.creates].filter((x): x is DensityCreate => !!x)) {
    L.push(
      `| ${c.variant} | ${c.n} | ${c.concurrency} | ${fmtMs(c.createMs)} | ${fmtMs(c.createMs / c.n)} | ${fmtMs(c.cpuMs / c.n)} | ${c.destroyMs === undefined ? '–' : fmtMs(c.destroyMs)} |`,
    );
  }
  L.push('');
  if (r.acetate?.memory) {
    L.push(
      `Memory per container while ${r.n} run (PSS from /proc/*/smaps_rollup; kernel: growth of /proc/meminfo over the create, divided by N; MemAvailable drop for reference):`,
      '',
      '| | conmon PSS | container PSS | Slab | KernelStack | PageTables | Percpu | node total | MemAvailable drop |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...memoryLines('acetate', r.acetate),
      ...(r.bare?.memory ? memoryLines('bare loop', r.bare) : []),
      '',
    );
  }
  if (r.acetate?.diskPerContainerBytes !== undefined)
    L.push(`Disk per container (acetate's container dir, run dir and runc state, du): ${kib(r.acetate.diskPerContainerBytes)}.`, '');
  if (r.noop) L.push(`No-op reconcile pass at ${r.n} (bench/noop-pass.ts, median of 5): ${fmtMs(r.noop.wallMs)} wall, ${fmtMs(r.noop.cpuMs)} CPU.`, '');
  if (r.latency)
    L.push(
      `Atomic save → cgroup: p50 ${fmtMs(r.latency.p50Ms)}, p90 ${fmtMs(r.latency.p90Ms)}, max ${fmtMs(r.latency.maxMs)} over ${r.latency.edits} edits (loop saw it after ${fmtMs(r.latency.detectMs)}, runc update ${fmtMs(r.latency.runcUpdateMs)}).`,
      '',
    );
  if (r.loop)
    L.push(
      `\`acetate run\` (default flags; metrics listener on port 0, JSON logs) over ${r.loop.windowS} s with nothing changing: ${r.loop.cpuMsPerSecond} ms CPU per second (its own and its children's)${r.loop.firstMinuteCpuMsPerSecond === undefined ? '' : `, after a window as long from 5 s after its first sync, which took ${r.loop.firstMinuteCpuMsPerSecond} ms/s (the start's tail: its first major collection)`}; RSS ${mb(r.loop.rssBytes)} (max ${mb(r.loop.rssMaxBytes)}) over both.`,
      '',
    );
  if (r.kernelNetAfterTeardown)
    L.push(
      `Kernel memory after teardown vs before the create: ${kib(r.kernelNetAfterTeardown.slabBytes)} slab, ${kib(r.kernelNetAfterTeardown.percpuBytes)} percpu (freed lazily: RCU, offline memory cgroups).`,
      '',
    );
  for (const n of r.notes) L.push(`- ${n}`);
  return `${L.join('\n')}\n`;
}

export const DENSITY_START = '<!-- density:start -->';
export const DENSITY_END = '<!-- density:end -->';

/** results.md with its density block (between the markers) replaced, or appended. */
export function spliceDensity(resultsMd: string, block: string): string {
  const wrapped = `${DENSITY_START}\n${block}${DENSITY_END}\n`;
  const a = resultsMd.indexOf(DENSITY_START);
  const b = resultsMd.indexOf(DENSITY_END);
  if (a >= 0 && b > a) return resultsMd.slice(0, a) + wrapped + resultsMd.slice(b + DENSITY_END.length + 1);
  return `${resultsMd.replace(/\n*$/, '\n\n')}${wrapped}`;
}

/** The density block of an existing results.md ('' if none): kept when the main run rewrites it. */
export async function densityBlockOf(resultsMdFile: string): Promise<string> {
  const text = await readFile(resultsMdFile, 'utf8').catch(() => '');
  const a = text.indexOf(DENSITY_START);
  const b = text.indexOf(DENSITY_END);
  return a >= 0 && b > a ? `${text.slice(a, b + DENSITY_END.length)}\n` : '';
}

export async function writeDensityResults(r: DensityResults, out: string, log: (m: string) => void): Promise<void> {
  await mkdir(out, { recursive: true });
  const md = densityMarkdown(r);
  await writeFile(path.join(out, 'density.json'), `${JSON.stringify({ ...r, targets: densityTargets(r) }, null, 2)}\n`);
  await writeFile(path.join(out, 'density.md'), `# acetate density benchmark\n\n${md}`);
  const resultsMd = path.join(out, 'results.md');
  await writeFile(resultsMd, spliceDensity(await readFile(resultsMd, 'utf8').catch(() => ''), md));
  log(`density results in ${path.relative(process.cwd(), out) || out}/density.md, density.json (and results.md)`);
}

/** Which mode was measured, in words (the header of density.md and its table in results.md). */
export function densityMode(r: Pick<DensityResults, 'userNamespaces'>): string {
  return r.userNamespaces
    ? "Mode: acetate's default, a user namespace per container (its own 65536-id range, layers mounted idmapped); the bare loop runs `runc run -d` with the config.json acetate wrote for the same container, the same range per container and the layers mounted idmapped by the same helper (bench/baseline/create-idmap.sh)."
    : 'Mode: node ids (ACETATE_HOST_USERS=true, `--density-host-users`); the bare loop runs `runc run -d` with the config.json acetate wrote for the same container (bench/baseline/create.sh).';
}
