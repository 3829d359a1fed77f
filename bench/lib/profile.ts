/** Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function, biggest first. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  what: string;
  selfMs: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time sampled outside JavaScript waiting for I/O (the "(idle)" node). */
  idleMs: number;
  gcMs: number;
  /** Self time grouped by module area (acetate's src/<dir>, node_modules/<pkg>, node internals). */
  byArea: ProfileEntry[];
  top: ProfileEntry[];
}

const maps = new Map<string, SourceMap | undefined>();

/**
 * The CLI runs as esbuild's bundle (dist/cli/bundle.js, scripts/bundle.mjs): a frame there is
 * mapped back through the bundle's linked source map to the .ts file and line it came
 * from, so areas and top entries name acetate's modules as they did before the bundle. Its
 * frames are named by path, not URL (the entry compiles it with vm.Script: src/cli/entry.cts).
 */
function original(frame: CpuProfileNode['callFrame']): { url: string; lineNumber: number } {
  if (!/\/dist\/cli\/.*\.js$/.test(frame.url)) return frame;
  const file = frame.url.startsWith('file:') ? fileURLToPath(frame.url) : frame.url;
  if (!maps.has(file)) {
    try {
      maps.set(file, new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]));
    } catch {
      maps.set(file, undefined); // no map: the chunk's own name and line
    }
  }
  const entry = maps.get(file)?.findEntry(frame.lineNumber, frame.columnNumber ?? 0) as { originalSource?: string; originalLine?: number } | undefined;
  // The bundle's top level (line 0, column 0) maps to no one source.
  if (!entry?.originalSource) return { url: 'acetate:(top level of the bundle)', lineNumber: frame.lineNumber };
  return { url: pathToFileURL(path.resolve(path.dirname(file), entry.originalSource)).href, lineNumber: entry.originalLine ?? frame.lineNumber };
}

function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('acetate:')) return url;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  const src = /\/(?:dist\/)?src\/([^/]+)\/(?:([^/]+)\/)?/.exec(url);
  if (src) return `acetate:${src[1]}${src[2] && !/\.[jt]s$/.test(src[2]) ? `/${src[2]}` : ''}`;
  if (url.startsWith('node:')) return 'node:internal';
  return url.replace(/^file:\/\//, '');
}

export async function summarizeProfile(file: string, topN = 10): Promise<ProfileSummary> {
  const prof = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000);
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let gc = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    total += ms;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') {
      idle += ms;
      continue;
    }
    if (fn === '(garbage collector)') gc += ms;
    const frame = original(n.callFrame);
    const where = frame.url ? `${frame.url.replace(/^.*\/(dist|node_modules|src)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = where ? `${fn} (${where})` : fn;
    byFn.set(key, (byFn.get(key) ?? 0) + ms);
    const area = areaOf(frame.url, fn);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
  }
  const busy = total - idle;
  const entries = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .map(([what, selfMs]) => ({ what, selfMs: Math.round(selfMs * 10) / 10, share: busy > 0 ? Math.round((selfMs / busy) * 1000) / 10 : 0 }));
  return {
    totalMs: Math.round(total),
    idleMs: Math.round(idle),
    gcMs: Math.round(gc),
    byArea: entries(byArea).slice(0, topN),
    top: entries(byFn).slice(0, topN),
  };
}
