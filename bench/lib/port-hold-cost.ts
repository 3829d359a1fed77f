/**
 * What holding published host ports open costs (src/runtime/network/port-holders.ts): the memory
 * of the holder processes an instance keeps (RSS, and PSS: what each adds, its pages shared with
 * every other `sleep`), and the time to hold a port (bind + start the holder) and release it (kill
 * + wait for the socket to close), measured on free ports of 127.0.0.1.
 */
import { readFile } from 'node:fs/promises';
import { holdHostPort, releaseHolder, type PortHolder } from '../../src/runtime/network/port-holders.js';
import { findProcessesByCmdline } from '../../src/util/processes.js';
import { round } from './stats.js';

export interface HolderMemory {
  holders: number;
  rssKiBPerHolder: number;
  pssKiBPerHolder: number;
}

export interface HoldTiming {
  ports: number;
  holdMsPerPort: number;
  releaseMsPerPort: number;
}

async function kib(pid: number, field: 'Rss' | 'Pss'): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
}

/** The holders of an instance (their argv[0] names its state dir). */
export async function holderMemory(stateDir: string): Promise<HolderMemory> {
  const ps = await findProcessesByCmdline(`acetate-port-holder:${stateDir}/`);
  let rss = 0;
  let pss = 0;
  for (const p of ps) {
    rss += await kib(p.pid, 'Rss');
    pss += await kib(p.pid, 'Pss');
  }
  const per = (x: number) => (ps.length ? round(x / ps.length, 1) : 0);
  return { holders: ps.length, rssKiBPerHolder: per(rss), pssKiBPerHolder: per(pss) };
}

/** Holds `ports` (free TCP ports of 127.0.0.1 from `base`) and releases them, timed. */
export async function holdTiming(base: number, ports: number): Promise<HoldTiming> {
  const held: PortHolder[] = [];
  const t0 = performance.now();
  let holdMs: number;
  try {
    for (let i = 0; i < ports; i++) {
      held.push(await holdHostPort({ containerPort: 80, hostPort: base + i, hostIP: '127.0.0.1', protocol: 'TCP' }, 'acetate-port-holder:bench'));
    }
  } finally {
    holdMs = performance.now() - t0;
  }
  const t1 = performance.now();
  for (const h of held) await releaseHolder(h);
  const releaseMs = performance.now() - t1;
  return { ports, holdMsPerPort: round(holdMs / ports, 2), releaseMsPerPort: round(releaseMs / ports, 2) };
}
