/**
 * Reliability cases of two processes on one state dir and of a supervisor killed under `acetate
 * run` (issue 10). Each container records every start of its process in its private area
 * (`/starts`, one line per start), so "ran twice" is read from the host, whatever its log says.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { cgroupProcs } from '../../src/runtime/runc/cgroups.js';
import { assertNoCrash, convergenceProblems, getAll, idOf, runCli, spawnCli, waitFor, writeAtomic, type Model, type RunningCli } from './lib.js';
import { manifestHead } from '../support/manifest.js';

export interface Bed {
  stateDir: string;
  dir: string;
  loop?: RunningCli;
}

export async function makeBed(): Promise<Bed> {
  return { stateDir: await makeTmpStateDir('acetate-conc-'), dir: await mkdtemp(path.join(os.tmpdir(), 'acetate-conc-m-')) };
}

export async function teardownBed(b: Bed | undefined): Promise<void> {
  if (!b) return;
  await stopLoop(b);
  await cleanupStateDir(b.stateDir);
  await rm(b.dir, { recursive: true, force: true });
  await assertNoLeaks(b.stateDir, { dirRemoved: true });
}

export const names = (n: number, prefix = 'c'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

/** A long-running container that appends a line to /starts at each start of its process. */
export function countingManifest(name: string, o: { script?: string; restartPolicy?: string } = {}): string {
  const script = o.script ?? 'exec sleep 1000000';
  return `${manifestHead(name)}  template: host
  command: ["/bin/sh", "-c", ${JSON.stringify(`echo start >> /starts; ${script}`)}]
  restartPolicy: ${o.restartPolicy ?? 'Always'}
  terminationGracePeriodSeconds: 0
  resources: { cpu: 100m, memory: 64Mi, pids: 16 }
`;
}

export function modelOf(list: string[]): Model {
  return new Map(list.map((n) => [n, { state: 'Running' as const, memoryMi: 64, variant: 0 }]));
}

export async function writeCounting(dir: string, list: string[]): Promise<void> {
  for (const n of list) await writeAtomic(path.join(dir, `${n}.yaml`), countingManifest(n));
}

/** How many times the container's process started, from its private area. */
export async function startsOf(stateDir: string, name: string): Promise<number> {
  const text = await readFile(path.join(instancePaths(stateDir).containersDir, idOf(name), 'upper', 'starts'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).length;
}

/** Converged, one conmon each, every process started exactly once, no restart counted. */
export async function assertExactlyOnce(stateDir: string, list: string[]): Promise<void> {
  const model = modelOf(list);
  await waitFor(async () => (await convergenceProblems(stateDir, model, { checkMarkers: false })).length === 0, {
    timeoutMs: 90_000,
    intervalMs: 500,
    message: async () => `convergence:\n  ${(await convergenceProblems(stateDir, model, { checkMarkers: false })).join('\n  ')}`,
  });
  const got = await getAll(stateDir);
  for (const g of got) assert.equal(g.restarts, 0, `${g.name} restarted ${g.restarts} time(s) without a cause`);
  for (const n of list) {
    await waitFor(async () => (await startsOf(stateDir, n)) >= 1, { what: `${n} to record its start`, timeoutMs: 10_000 });
    assert.equal(await startsOf(stateDir, n), 1, `${n}: its process started ${await startsOf(stateDir, n)} times`);
  }
}

/** The one line a loser prints: names the holder's pid and command. */
export function assertLoser(r: { code: number | null; stderr: string; stdout?: string }, holder: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1 from the second process, got ${r.code}\n${r.stderr}`);
  const line = r.stderr.split('\n').find((l) => /in use by pid \d+/.test(l));
  assert.ok(line, `no line naming the holder:\n${r.stderr}`);
  assert.match(line!, holder);
}

export async function startLoop(b: Bed, extra: string[] = []): Promise<RunningCli> {
  const loop = spawnCli(['run', '-f', b.dir, '--metrics-addr', '0', '--process-poll', '1s', '--log-format', 'json', ...extra], { stateDir: b.stateDir });
  b.loop = loop;
  await waitFor(() => /ready: first sync done/.test(loop.out()) || loop.child.exitCode !== null, { what: 'acetate run to be ready', timeoutMs: 60_000 });
  assert.equal(loop.child.exitCode, null, `acetate run exited:\n${loop.out()}\n${loop.err()}`);
  return loop;
}

export async function stopLoop(b: Bed): Promise<void> {
  const loop = b.loop;
  b.loop = undefined;
  if (!loop || loop.child.exitCode !== null) return;
  loop.child.kill('SIGTERM');
  const r = await loop.exited;
  assertNoCrash({ ...r, stderr: loop.err() }, 'acetate run');
}

/** Read-only commands in a loop until stop(): each must succeed (0, or 2 for plan with changes) and never take the lock. */
export function readOnlyLoops(b: Bed, names: () => string[]): { stop(): Promise<number> } {
  let stopped = false;
  let runs = 0;
  const one = async (args: string[], ok: number[]): Promise<void> => {
    const r = await runCli(args, { stateDir: b.stateDir, timeoutMs: 60_000 });
    assertNoCrash(r, args.join(' '));
    assert.ok(ok.includes(r.code ?? -1), `${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /in use by pid/, `${args.join(' ')} waited for the lock`);
    runs++;
  };
  const loops = [
    (async () => {
      while (!stopped) await one(['plan', '-f', b.dir], [0, 1, 2]);
    })(),
    (async () => {
      while (!stopped) await one(['get', '-o', 'json'], [0]);
    })(),
    (async () => {
      while (!stopped) {
        const list = names();
        // describe of a container that the loop may not have created yet: 0, or 1 "not found"
        if (list.length) await one(['describe', list[runs % list.length]!], [0, 1]);
        else await new Promise((r) => setTimeout(r, 50));
      }
    })(),
  ];
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return runs;
    },
  };
}

/** The pids in a container's cgroup (the pids hierarchy on v1, the unified one on v2). */
export async function cgroupMembersOf(stateDir: string, name: string): Promise<number[]> {
  const rel = `${instancePaths(stateDir).cgroupParent}/${idOf(name)}`.replace(/^\//, '');
  const v1 = await cgroupProcs(path.join('/sys/fs/cgroup/pids', rel));
  return v1.length ? v1 : cgroupProcs(path.join('/sys/fs/cgroup', rel));
}

export async function conmonPidOf(stateDir: string, name: string): Promise<number> {
  const text = await readFile(path.join(instancePaths(stateDir).runContainersDir, idOf(name), 'conmon.pid'), 'utf8');
  return Number(text.trim());
}

export async function writeText(file: string, text: string): Promise<void> {
  await writeFile(file, text);
}
