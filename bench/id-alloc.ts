/**
 * Cost of one id-range allocation (walls/id-ranges.ts assignIdRange) with 1 and with 2,500
 * containers already holding ranges, side by side with another build of the allocator in the
 * same run (the baseline: typically the previous commit's dist). Each allocation is a new
 * container of the state dir, one after another in one process, as `acetate apply` does them.
 * Prints a table: the first allocation of the process (which builds what it keeps), then the
 * median and mean of the next ones, in µs, and the `flock` processes started.
 *
 * Usage: node dist/bench/id-alloc.js [BASELINE_DIST_DIR] [ALLOCATIONS]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const RANGE = 65_536;
const POOL = { hostID: 1_000_000_000, size: RANGE * 10_000 };

interface Allocator {
  assignIdRange(store: unknown, dir: string, unprivileged: boolean): Promise<unknown>;
}

async function populate(dir: string, n: number): Promise<{ containersDir: string; recordsFile: string }> {
  const containersDir = path.join(dir, 'state', 'containers');
  const recordsFile = path.join(dir, 'node-id-ranges.json');
  const records = [];
  for (let i = 0; i < n; i++) {
    const name = `default_c${i}`;
    const range = { hostID: POOL.hostID + i * RANGE, size: RANGE };
    await mkdir(path.join(containersDir, name), { recursive: true });
    await writeFile(path.join(containersDir, name, 'ids.json'), JSON.stringify({ base: range.hostID, size: RANGE, range }));
    records.push({ owner: { stateDir: path.join(dir, 'state'), container: name }, ranges: [range] });
  }
  await writeFile(recordsFile, JSON.stringify({ version: 1, records }));
  return { containersDir, recordsFile };
}

/** The flock processes the build started: counted by id-lock.ts where it exists, else one per allocation (before it). */
async function spawnCounter(distDir: string, allocations: number): Promise<() => number | string> {
  try {
    const lock = (await import(pathToFileURL(path.join(distDir, 'src/runtime/walls/id-lock.js')).href)) as { idLockSpawns(): number };
    const before = lock.idLockSpawns();
    return () => lock.idLockSpawns() - before;
  } catch {
    return () => `${allocations} (one per allocation)`;
  }
}

async function measure(
  distDir: string,
  existing: number,
  allocations: number,
): Promise<{ firstUs: number; medianUs: number; meanUs: number; spawns: number | string }> {
  const mod = (await import(pathToFileURL(path.join(distDir, 'src/runtime/walls/id-ranges.js')).href)) as Allocator;
  const spawns = await spawnCounter(distDir, allocations + 1);
  const dir = await mkdtemp(path.join(tmpdir(), 'acetate-id-alloc-'));
  try {
    const { containersDir, recordsFile } = await populate(dir, existing);
    const store = { containersDir, recordsFile, pool: POOL };
    const times: number[] = [];
    for (let i = 0; i < allocations + 1; i++) {
      const d = path.join(containersDir, `default_new${i}`);
      await mkdir(d);
      const t0 = process.hrtime.bigint();
      await mod.assignIdRange(store, d, true);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    const rest = times.slice(1).sort((a, b) => a - b);
    return { spawns: spawns(), firstUs: times[0]!, medianUs: rest[Math.floor(rest.length / 2)]!, meanUs: rest.reduce((a, b) => a + b, 0) / rest.length };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const baseline = process.argv[2];
  const allocations = Number(process.argv[3] ?? 20);
  const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
  const builds: [string, string][] = [...(baseline ? [['baseline', path.resolve(baseline)] as [string, string]] : []), ['this build', here]];
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}; ${allocations} allocations after the first, one after another`,
  );
  console.log('build       existing  first µs   median µs  mean µs  flock processes');
  for (const existing of [1, 2500]) {
    for (const [name, dist] of builds) {
      const r = await measure(dist, existing, allocations);
      console.log(
        `${name.padEnd(11)} ${String(existing).padStart(8)} ${r.firstUs.toFixed(0).padStart(9)} ${r.medianUs.toFixed(0).padStart(11)} ${r.meanUs.toFixed(0).padStart(8)} ${r.spawns}`,
      );
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
