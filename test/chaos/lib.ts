/**
 * Shared machinery of the reliability suite: a seeded PRNG, the acetate CLI as a killable child
 * process, a model of the containers the manifests declare, and an inventory of what is actually
 * on the node for one state dir (runc state, conmon processes, mounts, cgroups, directories,
 * the marker file each container writes into its private area).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile, chmod, unlink, rename } from 'node:fs/promises';
import path from 'node:path';
import { runCli, startCli, type CliResult } from '../support/cli.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { cgroupHierarchies } from '../../src/runtime/runc/cgroups.js';
import { CONMON_CGROUP } from '../../src/runtime/runc/conmon-cgroup.js';
import { readMountInfo } from '../../src/util/mounts.js';
import { readProcStat } from '../../src/util/processes.js';
import { exec } from '../../src/util/exec.js';
import { flatContainers, type FlatContainer } from '../support/get.js';
import { manifestHead } from '../support/manifest.js';

// ------------------------------------------------------------------ seeded randomness

/** mulberry32: small, fast, good enough to make chaos reproducible from one 32-bit seed. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  fork(label: string): Rng {
    let h = this.seed ^ 0x9e3779b9;
    for (const ch of label) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    return new Rng(h >>> 0);
  }
}

/** The suite's seed: $ACETATE_CHAOS_SEED, else random. Printed so a failing run can be replayed. */
export function chaosSeed(label: string): number {
  const env = process.env.ACETATE_CHAOS_SEED;
  const seed = env !== undefined && env !== '' ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 32);
  console.log(`      [${label}] seed ${seed} (replay with ACETATE_CHAOS_SEED=${seed})`);
  return seed;
}

// ------------------------------------------------------------------ waiting

export { waitFor } from '../support/wait.js';

// ------------------------------------------------------------------ the CLI

export interface RunningCli {
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the acetate CLI without waiting for it (so that it can be killed at any moment). */
export function spawnCli(args: string[], opts: { stateDir: string; env?: NodeJS.ProcessEnv }): RunningCli {
  const c = startCli(args, opts);
  return { child: c.child, out: c.stdout, err: c.stderr, exited: c.done.then(({ code, signal }) => ({ code, signal })) };
}

export { runCli, type CliResult };

/** A container as `acetate get -o json` shows it, flattened (see ../support/get.ts). */
export type GotContainer = FlatContainer;

export async function getAll(stateDir: string, env?: NodeJS.ProcessEnv): Promise<GotContainer[]> {
  // --direct: the node's truth (every container's files and cgroup), not a running loop's view of it.
  const r = await runCli(['get', '-o', 'json', '--direct'], { stateDir, env });
  assert.equal(r.code, 0, `acetate get failed: ${r.stderr}`);
  return flatContainers(r.stdout);
}

/** A CLI run must end with an exit code (0 or 1), never a signal, crash or unhandled error. */
export function assertNoCrash(r: CliResult | { code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout?: string }, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
  assert.ok(r.code === 0 || r.code === 1 || r.code === 2, `${what}: exit code ${r.code}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+\)?\n/, `${what}: printed a stack trace\n${r.stderr}`);
  assert.doesNotMatch(
    r.stderr,
    /\b(TypeError|ReferenceError|RangeError|SyntaxError: Unexpected|Maximum call stack|heap out of memory|Unhandled)/,
    `${what}: internal error\n${r.stderr}`,
  );
}

// ------------------------------------------------------------------ containers under test

export interface ModelContainer {
  state: 'Running' | 'Stopped';
  memoryMi: number;
  /** Changing it changes the command: a replace (private area kept). */
  variant: number;
  /** The marker this container wrote into its private area on its first start (once seen). */
  marker?: string;
}

export type Model = Map<string, ModelContainer>;

/**
 * A container that, on its first start ever, writes a random UUID to /marker in its private area
 * and then sleeps. The marker must survive restarts, replaces, resizes and crashes of acetate for
 * as long as the container stays declared: a different (or missing) marker means a lost private area.
 */
export function chaosManifest(name: string, c: ModelContainer, grace = 0): string {
  return `${manifestHead(name)}  template: host
  command: ["/bin/sh", "-c", "test -s /marker || cat /proc/sys/kernel/random/uuid > /marker; exec sleep ${1_000_000 + c.variant}"]
  state: ${c.state}
  terminationGracePeriodSeconds: ${grace}
  resources: { cpu: 100m, memory: ${c.memoryMi}Mi, pids: 16 }
`;
}

/** Writes the manifests of a model into dir (one file per container) and deletes the others. */
export async function writeModel(dir: string, model: Model, grace = 0): Promise<void> {
  await mkdir(dir, { recursive: true });
  const want = new Set([...model.keys()].map((n) => `${n}.yaml`));
  for (const f of await readdir(dir)) if (f.endsWith('.yaml') && !want.has(f)) await rm(path.join(dir, f), { force: true });
  for (const [name, c] of model) await writeAtomic(path.join(dir, `${name}.yaml`), chaosManifest(name, c, grace));
}

/** What an editor (or git checkout) does: write a temp file and rename it over the old one. */
export async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  await writeFile(tmp, content);
  await rename(tmp, file);
}

export function cloneModel(m: Model): Model {
  return new Map([...m].map(([k, v]) => [k, { ...v }]));
}

export const idOf = (name: string, namespace = 'default'): string => `${namespace}_${name}`;

// ------------------------------------------------------------------ what is on the node

export interface Inventory {
  containerDirs: string[];
  /** Containers' runtime dirs under <runDir>/containers (bundle, conmon files). */
  runDirs: string[];
  records: string[];
  /** Mounts on the node under <state>/containers/<id>/, by id: there should be none (a container's root overlay lives in its own mount namespace). */
  mounts: Map<string, number>;
  runc: Map<string, { status: string; pid: number }>;
  /** Live conmon processes supervising a container of this state dir, by container id. */
  conmons: Map<string, number[]>;
  /** Cgroup dirs below the instance's parent, by id: hierarchies they exist in. */
  cgroups: Map<string, string[]>;
}

const REAL_RUNC = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'];

export async function realRunc(): Promise<string> {
  for (const p of REAL_RUNC) {
    try {
      await readFile(p).then(() => undefined);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error('runc not found');
}

export async function inventory(stateDir: string): Promise<Inventory> {
  const ip = instancePaths(stateDir);
  const containersPrefix = `${ip.containersDir}/`;
  const containerDirs = (await readdir(ip.containersDir).catch(() => [] as string[])).sort();
  const runDirs = (await readdir(ip.runContainersDir).catch(() => [] as string[])).sort();
  const records: string[] = [];
  for (const id of containerDirs) {
    if (
      await readFile(path.join(ip.containersDir, id, 'record.json')).then(
        () => true,
        () => false,
      )
    )
      records.push(id);
  }
  const mounts = new Map<string, number>();
  for (const m of await readMountInfo()) {
    if (!m.mountPoint.startsWith(containersPrefix)) continue;
    const id = m.mountPoint.slice(containersPrefix.length).split('/')[0]!;
    mounts.set(id, (mounts.get(id) ?? 0) + 1);
  }
  const runc = new Map<string, { status: string; pid: number }>();
  const listed = await exec(await realRunc(), ['--root', ip.runcRoot, 'list', '--format', 'json'], { timeoutMs: 30_000 }).catch(() => ({ stdout: 'null' }));
  for (const s of (JSON.parse(listed.stdout.trim() || 'null') as { id: string; status: string; pid: number }[] | null) ?? []) {
    runc.set(s.id, { status: s.status, pid: s.pid });
  }
  const conmons = new Map<string, number[]>();
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!args[0]?.endsWith('conmon')) continue;
    const bundle = args[args.indexOf('--bundle') + 1] ?? '';
    if (!bundle.startsWith(`${ip.runContainersDir}/`)) continue;
    const st = await readProcStat(pid);
    if (!st || st.state === 'Z') continue;
    const cid = args[args.indexOf('--cid') + 1] ?? '?';
    conmons.set(cid, [...(conmons.get(cid) ?? []), pid]);
  }
  const cgroups = new Map<string, string[]>();
  const rel = ip.cgroupParent.replace(/^\/+/, '');
  for (const h of await cgroupHierarchies()) {
    for (const id of await readdir(path.join(h, rel), { withFileTypes: true }).catch(() => [])) {
      // The conmons' shared cgroup is no container's: it goes with the last conmon (assertNoLeaks checks that).
      if (!id.isDirectory() || id.name === CONMON_CGROUP) continue;
      cgroups.set(id.name, [...(cgroups.get(id.name) ?? []), path.basename(h)]);
    }
  }
  return { containerDirs, runDirs, records, mounts, runc, conmons, cgroups };
}

export async function readMarker(stateDir: string, name: string): Promise<string | undefined> {
  const p = path.join(instancePaths(stateDir).containersDir, idOf(name), 'upper', 'marker');
  return readFile(p, 'utf8').then(
    (t) => t.trim() || undefined,
    () => undefined,
  );
}

function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Everything that must hold once acetate has converged on `model` (all in the default namespace):
 * returns the list of violations (empty = converged, nothing duplicated, nothing leaked, no private
 * area lost). Reads markers of running containers into the model the first time they appear.
 */
export async function convergenceProblems(stateDir: string, model: Model, opts: { checkMarkers?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const want = new Set([...model.keys()].map((n) => idOf(n)));
  const running = new Set([...model].filter(([, c]) => c.state === 'Running').map(([n]) => idOf(n)));
  const got = await getAll(stateDir);
  const gotIds = new Set(got.map((g) => g.id));
  for (const id of want) if (!gotIds.has(id)) problems.push(`${id}: declared but not listed by acetate get`);
  for (const g of got) {
    if (!want.has(g.id)) {
      problems.push(`${g.id}: listed but not declared`);
      continue;
    }
    const m = model.get(g.name)!;
    if (m.state === 'Running') {
      if (g.phase !== 'Running' || !isAlive(g.pid)) problems.push(`${g.id}: phase ${g.phase}, pid ${g.pid ?? '-'}, expected Running`);
      if (g.actual?.memory !== `${m.memoryMi}Mi`) problems.push(`${g.id}: memory in the cgroup ${g.actual?.memory ?? '-'}, declared ${m.memoryMi}Mi`);
    } else if (g.phase !== 'Stopped') problems.push(`${g.id}: phase ${g.phase}, expected Stopped`);
  }
  const inv = await inventory(stateDir);
  for (const id of inv.containerDirs) if (!want.has(id)) problems.push(`${id}: container dir left behind`);
  for (const id of inv.runDirs) if (!want.has(id)) problems.push(`${id}: run dir left behind`);
  for (const id of want) if (!inv.records.includes(id)) problems.push(`${id}: no record.json`);
  for (const [id, n] of inv.mounts) problems.push(`${id}: ${n} mount(s) left on the node under its dir`);
  for (const id of running) {
    const pid = inv.runc.get(id)?.pid;
    if (!pid) continue; // reported below
    const mi = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    const root = mi.split('\n').find((l) => l.split(' ')[4] === '/');
    if (!root || !root.includes(' - overlay ') || !root.includes(`upperdir=${instancePaths(stateDir).containersDir}/${id}/upper`)) {
      problems.push(`${id}: its / is not the overlay over its private area (${root ?? 'no root mount'})`);
    }
  }
  for (const [id, s] of inv.runc) {
    if (!running.has(id)) problems.push(`${id}: runc state ${s.status} but not declared running`);
    else if (s.status !== 'running') problems.push(`${id}: runc status ${s.status}`);
  }
  for (const id of running) if (!inv.runc.has(id)) problems.push(`${id}: no runc state`);
  for (const [id, pids] of inv.conmons) {
    if (!running.has(id)) problems.push(`${id}: conmon ${pids.join(',')} supervising a container that is not declared running`);
    else if (pids.length !== 1) problems.push(`${id}: ${pids.length} conmon processes (${pids.join(',')})`);
  }
  for (const id of running) if (!inv.conmons.has(id)) problems.push(`${id}: no conmon`);
  for (const [id, hs] of inv.cgroups) if (!running.has(id)) problems.push(`${id}: cgroups left in ${hs.join(',')}`);
  if (opts.checkMarkers !== false) {
    for (const [name, c] of model) {
      const marker = await readMarker(stateDir, name);
      if (c.marker !== undefined && marker !== c.marker) problems.push(`${idOf(name)}: private area lost (marker ${c.marker} → ${marker ?? 'missing'})`);
    }
  }
  return problems;
}

/** Once every running container has written its marker, remember the markers in the model. */
export async function learnMarkers(stateDir: string, model: Model): Promise<void> {
  for (const [name, c] of model) {
    if (c.marker !== undefined || c.state !== 'Running') continue;
    const m = await readMarker(stateDir, name);
    if (m) c.marker = m;
  }
}

export async function allMarkersWritten(stateDir: string, model: Model): Promise<boolean> {
  await learnMarkers(stateDir, model);
  return [...model.values()].every((c) => c.state !== 'Running' || c.marker !== undefined);
}

// ------------------------------------------------------------------ a runc that misbehaves on demand

export interface FaultyRunc {
  /** Put this dir first in PATH: it holds a `runc` that may fail or hang, then runs the real one. */
  binDir: string;
  /** Set the rules: each is a runc subcommand pattern (ERE over the arguments) and what to do. */
  set(rules: FaultRule[]): Promise<void>;
  clear(): Promise<void>;
  /** Faults injected so far (one line each: mode and arguments). */
  injected(): Promise<string[]>;
  env(): NodeJS.ProcessEnv;
}

export interface FaultRule {
  /** Extended regex matched against the runc arguments (e.g. ' start ', ' update .*memory'). */
  match: string;
  mode: 'fail' | 'hang';
  /** Only this often (0..1), decided per call by $RANDOM. Default 1. */
  probability?: number;
}

export async function makeFaultyRunc(dir: string): Promise<FaultyRunc> {
  const binDir = path.join(dir, 'bin');
  await mkdir(binDir, { recursive: true });
  const rules = path.join(dir, 'rules');
  const log = path.join(dir, 'injected.log');
  const real = await realRunc();
  await writeFile(rules, '');
  const script = `#!/bin/bash
# acetate chaos: a runc that fails or hangs for calls matching the rules in ${rules}
args=" $* "
if [ -s ${JSON.stringify(rules)} ]; then
  while IFS='|' read -r mode prob pattern; do
    [ -z "$mode" ] && continue
    if [[ "$args" =~ $pattern ]] && [ $((RANDOM % 1000)) -lt "$prob" ]; then
      echo "$(date +%s%3N) $mode$args" >> ${JSON.stringify(log)}
      if [ "$mode" = hang ]; then exec sleep 3600; fi
      echo "time=\\"$(date -Iseconds)\\" level=error msg=\\"injected fault: $pattern\\"" >&2
      exit 1
    fi
  done < ${JSON.stringify(rules)}
fi
exec ${real} "$@"
`;
  const bin = path.join(binDir, 'runc');
  await writeFile(bin, script);
  await chmod(bin, 0o755);
  const set = async (rs: FaultRule[]): Promise<void> => {
    await writeAtomic(rules, rs.map((r) => `${r.mode}|${Math.round((r.probability ?? 1) * 1000)}|${r.match}\n`).join(''));
  };
  return {
    binDir,
    set,
    clear: () => set([]),
    injected: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean),
    // ACETATE_RUNC names the binary; PATH too, for acetate versions that only search PATH.
    env: () => ({ ACETATE_RUNC: bin, PATH: `${binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` }),
  };
}

/** Kills the `sleep 3600` of hanging fake runc calls (their parents then fail), for cleanup. */
export async function killHungRuncs(binDir: string): Promise<void> {
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (cmd[0] === 'sleep' && cmd[1] === '3600') {
      const parentCmd = await readFile(`/proc/${e}/environ`, 'utf8').catch(() => '');
      if (parentCmd.includes(binDir)) {
        try {
          process.kill(Number(e), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
}

export async function removeQuietly(p: string): Promise<void> {
  await unlink(p).catch(() => undefined);
}

/** Milliseconds since t0, rounded. */
export const since = (t0: number): number => Math.round(performance.now() - t0);
