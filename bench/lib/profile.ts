/** Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function, biggest first. */
import { readFile } from 'node:fs/promises';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
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

function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  const src = /\/dist\/src\/([^/]+)\/(?:([^/]+)\/)?/.exec(url);
  if (src) return `acetate:${src[1]}${src[2] && !src[2].endsWith('.js') ? `/${src[2]}` : ''}`;
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
    const where = n.callFrame.url ? `${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}` : '';
    const key = where ? `${fn} (${where})` : fn;
    byFn.set(key, (byFn.get(key) ?? 0) + ms);
    const area = areaOf(n.callFrame.url, fn);
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
