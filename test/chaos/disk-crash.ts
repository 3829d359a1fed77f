/**
 * Crash anywhere with disk limits: acetate is SIGKILLed at a random moment while it creates,
 * grows, shrinks (a copy into a new image at the restart resizePolicy asks for), moves private
 * areas in and out of their images, replaces and destroys containers with resources.disk; then
 * applied again. Afterwards: converged to the declared sizes, no marker lost, and no loop device,
 * mount or image file leaked (one image, one loop device and one mount per declared disk, no
 * half-made copy).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readMountInfo } from '../../src/util/mounts.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { assertNoLeaks, cleanupStateDir, loopsUnder } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { mountLines } from '../support/disk.js';
import { exists } from '../../src/util/exists.js';
import { exec } from '../../src/util/exec.js';
import { formatMemory } from '../../src/api/quantity.js';
import { assertNoCrash, getAll, idOf, runCli, since, spawnCli, waitFor, writeAtomic, type Rng } from './lib.js';
import { manifestHead } from '../support/manifest.js';

export interface DiskModelContainer {
  state: 'Running' | 'Stopped';
  /** MiB; undefined: no disk limit. */
  diskMi?: number;
  variant: number;
  marker?: string;
}
export type DiskModel = Map<string, DiskModelContainer>;

const SIZES = [undefined, 16, 24, 32, 48];

/** Writes a marker and 2 MiB of data on its first start (so that a copy has something to move). */
export function diskManifest(name: string, c: DiskModelContainer): string {
  return `${manifestHead(name)}  template: host
  command: ["/bin/sh", "-c", "test -s /marker || { head -c 2097152 /dev/urandom > /filler; cat /proc/sys/kernel/random/uuid > /marker; }; exec sleep ${1_000_000 + c.variant}"]
  state: ${c.state}
  terminationGracePeriodSeconds: 0
  resizePolicy: [{ resourceName: disk, restartPolicy: RestartContainer }]
${c.diskMi === undefined ? '' : `  resources: { disk: ${c.diskMi}Mi }\n`}`;
}

export async function writeDiskModel(dir: string, model: DiskModel): Promise<void> {
  const want = new Set([...model.keys()].map((n) => `${n}.yaml`));
  for (const f of await readdir(dir)) if (f.endsWith('.yaml') && !want.has(f)) await rm(path.join(dir, f), { force: true });
  for (const [name, c] of model) await writeAtomic(path.join(dir, `${name}.yaml`), diskManifest(name, c));
}

/** The marker, read from the host wherever the private area is (in its mounted image or not). */
async function readMarker(stateDir: string, name: string): Promise<string | undefined> {
  const dir = path.join(instancePaths(stateDir).containersDir, idOf(name));
  for (const p of [path.join(dir, 'disk', 'upper', 'marker'), path.join(dir, 'upper', 'marker')]) {
    const t = await readFile(p, 'utf8').catch(() => '');
    if (t.trim()) return t.trim();
  }
  // A stopped container's image need not be attached (e.g. replaced while Stopped): look inside, read-only.
  if (!(await exists(path.join(dir, 'disk.img'))) || (await mountLines('self', path.join(dir, 'disk'))).length) return undefined;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'acetate-peek-'));
  try {
    await exec('mount', ['-o', 'loop,ro,norecovery', path.join(dir, 'disk.img'), tmp]);
    try {
      return (await readFile(path.join(tmp, 'upper', 'marker'), 'utf8').catch(() => '')).trim() || undefined;
    } finally {
      await exec('umount', [tmp]);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export function mutateDisks(model: DiskModel, universe: string[], rng: Rng): { next: DiskModel; changes: number } {
  const next: DiskModel = new Map([...model].map(([k, v]) => [k, { ...v }]));
  let changes = 0;
  while (changes === 0) {
    for (const name of universe) {
      const c = next.get(name);
      if (!c) {
        if (rng.chance(0.3)) {
          next.set(name, { state: 'Running', diskMi: rng.pick(SIZES.slice(1)), variant: 0 });
          changes++;
        }
        continue;
      }
      const roll = rng.next();
      if (roll < 0.1) {
        next.delete(name);
        changes++;
      } else if (roll < 0.55) {
        let d = c.diskMi;
        while (d === c.diskMi) d = rng.pick(SIZES);
        c.diskMi = d;
        changes++;
      } else if (roll < 0.65) {
        c.variant++;
        changes++;
      } else if (roll < 0.72) {
        c.state = c.state === 'Running' ? 'Stopped' : 'Running';
        changes++;
      }
    }
  }
  return { next, changes };
}

/** Everything that must hold once converged: sizes, markers, and exactly the loop devices and mounts of declared disks. */
export async function diskProblems(stateDir: string, model: DiskModel): Promise<string[]> {
  const problems: string[] = [];
  const containersDir = instancePaths(stateDir).containersDir;
  const got = new Map((await getAll(stateDir)).map((g) => [g.name, g]));
  for (const [name, c] of model) {
    const g = got.get(name);
    if (!g) {
      problems.push(`${name}: declared, not listed`);
      continue;
    }
    if (c.state === 'Running' && g.phase !== 'Running') problems.push(`${name}: phase ${g.phase}, expected Running`);
    // The size in force of a running container's disk: status.resources.disk (read from its filesystem).
    const inForce = g.object.status?.resources?.disk;
    if (c.state === 'Running' && inForce !== (c.diskMi === undefined ? undefined : formatMemory(c.diskMi * 2 ** 20))) {
      problems.push(`${name}: disk ${inForce ?? 'none'}, declared ${c.diskMi ?? 'none'}Mi`);
    }
    if (c.marker !== undefined) {
      const m = await readMarker(stateDir, name);
      if (m !== c.marker) problems.push(`${name}: private area lost (marker ${c.marker} → ${m ?? 'missing'})`);
    }
  }
  for (const name of got.keys()) if (!model.has(name)) problems.push(`${name}: listed, not declared`);
  for (const id of await readdir(containersDir).catch(() => [] as string[])) {
    for (const f of await readdir(path.join(containersDir, id)).catch(() => [] as string[])) {
      if (/\.(new|old)$/.test(f)) problems.push(`${id}: ${f} left`);
    }
  }
  const images = new Map<string, number>();
  for (const l of await loopsUnder(stateDir)) images.set(l.backFile, (images.get(l.backFile) ?? 0) + 1);
  for (const [file, n] of images) {
    const id = path.relative(containersDir, file).split('/')[0]!;
    const name = id.replace(/^default_/, '');
    if (n > 1) problems.push(`${file}: ${n} loop devices`);
    if (model.get(name)?.diskMi === undefined && model.get(name)?.state === 'Running') problems.push(`${file}: attached, but ${name} declares no disk`);
    if (!model.has(name)) problems.push(`${file}: attached, but ${name} is not declared`);
  }
  for (const m of await readMountInfo()) {
    if (!m.mountPoint.startsWith(`${containersDir}/`)) continue;
    const [id, leaf] = path.relative(containersDir, m.mountPoint).split('/');
    if (leaf !== 'disk' || !model.has(id!.replace(/^default_/, ''))) problems.push(`mount left: ${m.mountPoint}`);
  }
  return problems;
}

async function learnMarkers(stateDir: string, model: DiskModel): Promise<boolean> {
  for (const [name, c] of model) if (c.marker === undefined && c.state === 'Running') c.marker = await readMarker(stateDir, name);
  return [...model.values()].every((c) => c.state !== 'Running' || c.marker !== undefined);
}

export interface DiskCrashSuite {
  stateDir: string;
  dir: string;
  model: DiskModel;
  universe: string[];
  stats: { trials: number; kills: number; killsMidway: number; changes: number; lost: number; leaked: number };
}

export async function setupDiskCrashSuite(n: number): Promise<DiskCrashSuite> {
  const stateDir = await makeTmpStateDir('acetate-chaosdisk-');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-chaosdisk-m-'));
  const universe = Array.from({ length: Math.ceil(n * 1.3) }, (_, i) => `d${i}`);
  const model: DiskModel = new Map(universe.slice(0, n).map((name, i) => [name, { state: 'Running', diskMi: SIZES[1 + (i % 4)], variant: 0 }]));
  await writeDiskModel(dir, model);
  const r = await runCli(['apply', '-f', dir, '--concurrency', '2'], { stateDir, timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  await waitFor(() => learnMarkers(stateDir, model), { what: 'markers written', timeoutMs: 60_000, intervalMs: 200 });
  return { stateDir, dir, model, universe, stats: { trials: 0, kills: 0, killsMidway: 0, changes: 0, lost: 0, leaked: 0 } };
}

export async function diskCrashTrial(s: DiskCrashSuite, rng: Rng, trial: number, log: (m: string) => void): Promise<void> {
  const { next, changes } = mutateDisks(s.model, s.universe, rng);
  await writeDiskModel(s.dir, next);
  const args = ['apply', '-f', s.dir, '--concurrency', '2', '--allow-empty'];
  const cli = spawnCli(args, { stateDir: s.stateDir });
  const t0 = performance.now();
  // Aim into the work: plan printed, then up to ~40 ms per change (an apply of 8 changes takes ~300 ms after its plan).
  await waitFor(() => /[+~-] \w+|No changes/.test(cli.out()) || cli.child.exitCode !== null, { what: 'plan printed', timeoutMs: 60_000, intervalMs: 5 });
  const delay = rng.int(40 * changes);
  await Promise.race([new Promise((r) => setTimeout(r, delay)), cli.exited]);
  const midway = cli.child.exitCode === null && cli.child.signalCode === null;
  cli.child.kill('SIGKILL');
  await cli.exited;
  s.stats.trials++;
  s.stats.kills++;
  s.stats.changes += changes;
  if (midway) s.stats.killsMidway++;
  log(`trial ${trial}: ${changes} changes, SIGKILL at ${since(t0)} ms (${midway ? 'midway' : 'after it finished'})`);
  const r = await runCli(args, { stateDir: s.stateDir, timeoutMs: 300_000 });
  assertNoCrash(r, `trial ${trial}: apply after the crash`);
  assert.equal(r.code, 0, `trial ${trial}: apply after the crash failed:\n${r.stderr}\n${r.stdout.slice(-3000)}`);
  for (const [name, c] of next) c.marker = s.model.get(name)?.marker;
  s.model = next;
  let last: string[] = [];
  try {
    await waitFor(
      async () => {
        await learnMarkers(s.stateDir, s.model);
        last = await diskProblems(s.stateDir, s.model);
        return last.length === 0;
      },
      { what: `trial ${trial}: convergence`, timeoutMs: 60_000, intervalMs: 250 },
    );
  } catch (err) {
    s.stats.lost += last.filter((p) => p.includes('lost')).length;
    s.stats.leaked += last.filter((p) => /left|attached|loop devices/.test(p)).length;
    throw new Error(
      `trial ${trial}: not converged:\n  ${last.join('\n  ')}\nkilled apply:\n${cli.out().slice(-3000)}\nrecovery apply:\n${r.stdout.slice(-3000)}`,
      { cause: err },
    );
  }
}

export async function teardownDiskCrashSuite(s: DiskCrashSuite | undefined): Promise<void> {
  if (!s) return;
  await cleanupStateDir(s.stateDir);
  await assertNoLeaks(s.stateDir, { dirRemoved: true });
  await rm(s.dir, { recursive: true, force: true });
}
