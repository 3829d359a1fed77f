/**
 * The unprivileged-create benchmark's results (bench/userns.ts): their shape, issue 23's target
 * with "met"/"not met", bench/results/userns.{json,md}, and the same table spliced into results.md
 * between markers (kept there when the main run rewrites results.md, see results-report.ts).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fmtKiB, fmtMiB, fmtMs, median, round } from './stats.js';

/** One kind of container (host template, image), N created per repetition on each side. */
export interface UsernsKind {
  kind: string;
  /** Layers mounted idmapped per container. */
  layers: number;
  bareMs: number[];
  acetateMs: number[];
  /** CPU of each side's command and everything it started (not the containers' own). */
  bareCpuMs: number[];
  acetateCpuMs: number[];
  ratio?: number;
  /** du of acetate's container dirs + run dirs + runc state while N run, divided by N. */
  acetateDiskPerContainerBytes?: number;
  acetateDiskParts?: { containerDirs: number; runDirs: number; runcState: number };
  /** The same for the bare loop (private areas, bundles, runc state, layer mount points). */
  bareDiskPerContainerBytes?: number;
  /** The image's layer store (du), once for all containers. */
  imageLayersBytes?: number;
  /** Entries of the layer store not owned by root:root (nothing chowned: 0). */
  layerEntriesNotRoot?: number;
  /** The host view's marker tree and its stock of copies (per node, not per container). */
  hostLayerBytes?: number;
}

export interface UsernsResults {
  startedAt: string;
  n: number;
  reps: number;
  concurrency: number;
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  kinds: UsernsKind[];
  /** Where acetate's extra time per create goes (bench/userns-profile.ts), if measured. */
  profile?: string;
}

export const USERNS_TARGET = 1.1;

export function usernsTargets(r: UsernsResults): { what: string; target: string; measured: string; met: boolean }[] {
  return r.kinds
    .filter((k) => k.ratio !== undefined)
    .map((k) => ({
      what: `create ${r.n} unprivileged containers, ${k.kind}, vs the bare loop with the same mappings`,
      target: `≤ ${USERNS_TARGET}×`,
      measured: `${k.ratio!.toFixed(2)}×`,
      met: k.ratio! <= USERNS_TARGET,
    }));
}

const perC = (ms: number, n: number) => `${round(ms / n, 1)} ms`;

export function usernsMarkdown(r: UsernsResults): string {
  const L: string[] = [];
  L.push(
    `## Unprivileged create (issue 23): ${r.n} containers, each in a user namespace with its own ${65536}-id range, layers mounted idmapped`,
    '',
    `Both sides at concurrency ${r.concurrency} (acetate's default), medians of ${r.reps}, alternating, in one run (${r.startedAt}); load average ${r.loadAvgStart.join(', ')} at the start, ${(r.loadAvgEnd ?? []).join(', ')} at the end (2 cores shared with other work: the ratios, not the absolute times, are what compares).`,
    "The bare loop (bench/baseline/create-idmap.sh) runs the config.json acetate wrote for the same container with the same id range per container, the same layers mounted idmapped by the same helper (native/acetate-idmap, held around `runc run -d` as acetate holds it around `runc create`), and nothing else: no conmon, no records, no logs, no machine id, no checks (for the host template, the host view's shared layer is one of those layers: a copy of acetate's, mounted the same way).",
    '',
    '| what | bare loop | acetate | per container (bare / acetate) | ratio | target |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  );
  for (const k of r.kinds) {
    const b = median(k.bareMs);
    const a = median(k.acetateMs);
    const met = k.ratio !== undefined && k.ratio <= USERNS_TARGET;
    L.push(
      `| create ${r.n}, ${k.kind} (${k.layers} idmapped layer${k.layers === 1 ? '' : 's'} each) | ${fmtMs(b)} | ${fmtMs(a)} | ${perC(b, r.n)} / ${perC(a, r.n)} | ${(k.ratio ?? NaN).toFixed(2)}× | ≤ ${USERNS_TARGET}× ${met ? 'met' : 'NOT MET'} |`,
    );
  }
  L.push('', 'CPU per container (the command and every process it started; median):', '');
  for (const k of r.kinds) L.push(`- ${k.kind}: bare loop ${perC(median(k.bareCpuMs), r.n)}, acetate ${perC(median(k.acetateCpuMs), r.n)}`);
  L.push('', `Disk while ${r.n} run (du, allocated blocks):`, '', '| | per container | |', '| --- | ---: | --- |');
  for (const k of r.kinds) {
    if (k.acetateDiskPerContainerBytes !== undefined) {
      const p = k.acetateDiskParts;
      const parts = p ? `container dir ${fmtKiB(p.containerDirs)}, run dir ${fmtKiB(p.runDirs)}, runc state ${fmtKiB(p.runcState)}` : '';
      L.push(`| acetate, ${k.kind} | ${fmtKiB(k.acetateDiskPerContainerBytes)} | ${parts} |`);
    }
    if (k.bareDiskPerContainerBytes !== undefined)
      L.push(`| bare loop, ${k.kind} | ${fmtKiB(k.bareDiskPerContainerBytes)} | private area, bundle, runc state, layer mount points |`);
  }
  L.push('');
  for (const k of r.kinds) {
    if (k.imageLayersBytes !== undefined)
      L.push(
        `- The image's ${k.layers} layers: ${fmtMiB(k.imageLayersBytes)} once for all ${r.n} containers (one copy, mounted idmapped per container); entries of the layer store not owned by root: ${k.layerEntriesNotRoot ?? '?'} (nothing chowned).`,
      );
    if (k.hostLayerBytes !== undefined)
      L.push(`- The host view's layer, shared by every host-template container (per node, not per container): ${fmtKiB(k.hostLayerBytes)}.`);
  }
  L.push(
    `- Checked on both sides while the ${r.n} ran: each container's /proc/<pid>/uid_map is \`0 <node id> 65536\`, non-zero and disjoint from every other's.`,
  );
  L.push(
    "- Where acetate's extra time per create goes (processes per create, records written, a trace of one apply against the bare loop's): [userns-profile.md](userns-profile.md).",
  );
  if (r.profile) L.push('', r.profile);
  return `${L.join('\n')}\n`;
}

export const USERNS_START = '<!-- userns:start -->';
export const USERNS_END = '<!-- userns:end -->';

/** results.md with the text between start and end replaced by block, or block appended. */
export function spliceBlock(resultsMd: string, block: string, start: string, end: string): string {
  const wrapped = `${start}\n${block}${end}\n`;
  const a = resultsMd.indexOf(start);
  const b = resultsMd.indexOf(end);
  if (a >= 0 && b > a) return resultsMd.slice(0, a) + wrapped + resultsMd.slice(b + end.length + 1);
  return `${resultsMd.replace(/\n*$/, '\n\n')}${wrapped}`;
}

/** The block between start and end of an existing results.md ('' if none): kept when the main run rewrites it. */
export async function blockOf(resultsMdFile: string, start: string, end: string): Promise<string> {
  const text = await readFile(resultsMdFile, 'utf8').catch(() => '');
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  return a >= 0 && b > a ? `${text.slice(a, b + end.length)}\n` : '';
}

export async function writeUsernsResults(r: UsernsResults, out: string, log: (m: string) => void): Promise<void> {
  await mkdir(out, { recursive: true });
  const md = usernsMarkdown(r);
  await writeFile(path.join(out, 'userns.json'), `${JSON.stringify({ ...r, targets: usernsTargets(r) }, null, 2)}\n`);
  await writeFile(path.join(out, 'userns.md'), `# acetate unprivileged-create benchmark\n\n${md}`);
  const resultsMd = path.join(out, 'results.md');
  await writeFile(resultsMd, spliceBlock(await readFile(resultsMd, 'utf8').catch(() => ''), md, USERNS_START, USERNS_END));
  for (const t of usernsTargets(r)) log(`${t.met ? 'met' : 'NOT MET'}  ${t.what}: ${t.measured} (target ${t.target})`);
  log(`userns results in ${out}/userns.md, userns.json (and results.md)`);
}
