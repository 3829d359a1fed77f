/**
 * Crash anywhere: acetate is SIGKILLed at a random moment while it converges a random change to
 * N containers, then started again; afterwards the node must equal the manifests with nothing
 * duplicated, nothing leaked and no private area lost (see convergenceProblems). Used by the full
 * chaos suite (20+ trials) and the reduced CI variant (3 trials).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { flatContainers } from '../support/get.js';
import {
  allMarkersWritten,
  assertNoCrash,
  cloneModel,
  convergenceProblems,
  runCli,
  since,
  spawnCli,
  waitFor,
  writeModel,
  type Model,
  type ModelContainer,
  type Rng,
  type RunningCli,
} from './lib.js';

export interface CrashSuite {
  stateDir: string;
  dir: string;
  model: Model;
  universe: string[];
  concurrency: number;
  /** Wall time of one uninterrupted apply creating all N (ms), to aim the kills. */
  fullApplyMs: number;
  stats: CrashStats;
  /** `acetate run`, when the suite crashes the loop instead of apply. */
  loop?: RunningCli;
}

export interface CrashStats {
  trials: number;
  kills: number;
  /** Kills that hit acetate while it was still working (not before start, not after exit). */
  killsMidway: number;
  /** Kills that hit the recovery itself (a second crash before convergence). */
  recoveryKills: number;
  actionsPlanned: number;
  /** Actions acetate reported done before it was killed (its ✓ lines). */
  actionsDoneBeforeKill: number;
  lostPrivateAreas: number;
  duplicates: number;
  leaks: number;
}

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${String(i).padStart(3, '0')}`);

export async function setupCrashSuite(n: number, concurrency: number): Promise<CrashSuite> {
  const stateDir = await makeTmpStateDir('acetate-chaos-');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-chaos-m-'));
  const model: Model = new Map();
  for (const name of names(n)) model.set(name, { state: 'Running', memoryMi: 64, variant: 0 });
  await writeModel(dir, model);
  const t0 = performance.now();
  const r = await runCli(['apply', '-f', dir, '--concurrency', String(concurrency)], { stateDir, timeoutMs: 600_000 });
  const fullApplyMs = since(t0);
  assert.equal(r.code, 0, `initial apply failed:\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  await waitFor(() => allMarkersWritten(stateDir, model), { what: 'every container wrote its marker', timeoutMs: 60_000, intervalMs: 200 });
  return {
    stateDir,
    dir,
    model,
    universe: names(Math.ceil(n * 1.2)),
    concurrency,
    fullApplyMs,
    stats: { trials: 0, kills: 0, killsMidway: 0, recoveryKills: 0, actionsPlanned: 0, actionsDoneBeforeKill: 0, lostPrivateAreas: 0, duplicates: 0, leaks: 0 },
  };
}

/** A random change: resize, replace, stop/start, destroy some; add new ones. At least one change. */
export function mutate(model: Model, universe: string[], rng: Rng): { next: Model; changes: number } {
  const next = cloneModel(model);
  let changes = 0;
  while (changes === 0) {
    for (const name of universe) {
      const c = next.get(name);
      if (!c) {
        if (rng.chance(0.35)) {
          next.set(name, { state: rng.chance(0.85) ? 'Running' : 'Stopped', memoryMi: 32 + 8 * rng.int(9), variant: 0 });
          changes++;
        }
        continue;
      }
      const roll = rng.next();
      if (roll < 0.08) {
        next.delete(name);
        changes++;
      } else if (roll < 0.2) {
        let mem = c.memoryMi;
        while (mem === c.memoryMi) mem = 32 + 8 * rng.int(9);
        c.memoryMi = mem;
        changes++;
      } else if (roll < 0.28) {
        c.variant++;
        changes++;
      } else if (roll < 0.34) {
        c.state = c.state === 'Running' ? 'Stopped' : 'Running';
        changes++;
      }
    }
  }
  return { next, changes };
}

function doneCount(out: string): number {
  return (out.match(/✓ /g) ?? []).length;
}

/**
 * SIGKILLs the CLI at a random moment: with probability 0.2 while it starts (loading, planning),
 * else a uniform random time into its work, counted from when it printed its plan.
 */
async function killAt(cli: RunningCli, rng: Rng, workMs: number): Promise<{ midway: boolean; done: number; atMs: number }> {
  const t0 = performance.now();
  const exited = cli.exited.then(() => 'exited' as const);
  const timers: NodeJS.Timeout[] = [];
  const sleep = (ms: number) => new Promise<'timer'>((r) => timers.push(setTimeout(() => r('timer'), ms)));
  let first: 'timer' | 'exited';
  if (rng.chance(0.2)) {
    first = await Promise.race([sleep(rng.int(400)), exited]);
  } else {
    const planned = waitFor(() => /[+~-] \w+|No changes/.test(cli.out()) || cli.child.exitCode !== null, {
      what: 'plan printed',
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    first = await Promise.race([planned.then(() => 'timer' as const), exited]);
    if (first === 'timer') first = await Promise.race([sleep(rng.int(Math.max(1, Math.round(workMs)))), exited]);
  }
  timers.forEach(clearTimeout);
  const midway = first === 'timer' && cli.child.exitCode === null && cli.child.signalCode === null;
  const atMs = since(t0);
  cli.child.kill('SIGKILL');
  await cli.exited;
  return { midway, done: doneCount(cli.out()), atMs };
}

/** Expected duration of the work of `changes` actions (ms), from the initial full apply. */
function workEstimate(s: CrashSuite, changes: number): number {
  const perChange = Math.max(20, (s.fullApplyMs - 400) / Math.max(1, s.model.size));
  return 1.2 * perChange * changes * (4 / s.concurrency) + 100;
}

/** Checks convergence, polling (the loop converges asynchronously), and records what went wrong. */
export async function expectConverged(s: CrashSuite, label: string, timeoutMs: number): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(
      async () => {
        await allMarkersWritten(s.stateDir, s.model);
        last = await convergenceProblems(s.stateDir, s.model);
        return last.length === 0;
      },
      { what: `${label}: convergence`, timeoutMs, intervalMs: 250 },
    );
  } catch (err) {
    s.stats.lostPrivateAreas += last.filter((p) => p.includes('private area lost')).length;
    s.stats.duplicates += last.filter((p) => /times|conmon processes/.test(p)).length;
    s.stats.leaks += last.filter((p) => /left|but not|mounted/.test(p)).length;
    throw new Error(`${label}: not converged:\n  ${last.join('\n  ')}`, { cause: err });
  }
}

/** One trial under `acetate apply`: change, apply, SIGKILL at a random moment (maybe twice), apply again. */
export async function applyCrashTrial(s: CrashSuite, rng: Rng, trial: number, log: (m: string) => void): Promise<void> {
  const { next, changes } = mutate(s.model, s.universe, rng);
  await writeModel(s.dir, next);
  const work = workEstimate(s, changes);
  const args = ['apply', '-f', s.dir, '--concurrency', String(s.concurrency), '--allow-empty'];
  const first = spawnCli(args, { stateDir: s.stateDir });
  const k1 = await killAt(first, rng, work);
  s.stats.trials++;
  s.stats.kills++;
  if (k1.midway) s.stats.killsMidway++;
  s.stats.actionsPlanned += changes;
  s.stats.actionsDoneBeforeKill += k1.done;
  let extra = '';
  if (rng.chance(0.3)) {
    const second = spawnCli(args, { stateDir: s.stateDir });
    const k2 = await killAt(second, rng, work);
    s.stats.kills++;
    if (k2.midway) s.stats.recoveryKills++;
    extra = `, then the recovery killed at ${k2.atMs} ms (${k2.midway ? `midway, ${k2.done} done` : 'after it finished'})`;
  }
  log(`trial ${trial}: ${changes} changes, SIGKILL at ${k1.atMs} ms (${k1.midway ? `midway, ${k1.done} done` : 'after it finished'})${extra}`);
  const r = await runCli(args, { stateDir: s.stateDir, timeoutMs: 600_000 });
  assertNoCrash(r, `trial ${trial}: apply after the crash`);
  assert.equal(r.code, 0, `trial ${trial}: apply after the crash failed:\n${r.stderr}\n${r.stdout.slice(-3000)}`);
  // Keep the markers of containers still declared; forget those destroyed or newly created.
  for (const [name, c] of next) {
    const prev = s.model.get(name);
    c.marker = prev?.marker;
  }
  s.model = next;
  await expectConverged(s, `trial ${trial}`, 20_000);
  const again = await runCli(['apply', '-f', s.dir, '--allow-empty'], { stateDir: s.stateDir });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /No changes/, `trial ${trial}: a second apply still had work:\n${again.stdout}`);
}

/** Starts `acetate run` on the suite (fast back-offs), waiting for it to be ready. */
export function startLoop(s: CrashSuite, env: NodeJS.ProcessEnv = {}): RunningCli {
  const loop = spawnCli(
    [
      'run',
      '-f',
      s.dir,
      '--concurrency',
      String(s.concurrency),
      '--metrics-addr',
      '0',
      '--allow-empty',
      '--log-format',
      'json',
      '--resync',
      '2s',
      '--relist',
      '5s',
    ],
    {
      stateDir: s.stateDir,
      env: { ACETATE_BACKOFF_BASE_MS: '200', ACETATE_BACKOFF_MAX_MS: '2000', ACETATE_CRASHLOOP_BASE_MS: '200', ACETATE_CRASHLOOP_MAX_MS: '2000', ...env },
    },
  );
  s.loop = loop;
  return loop;
}

export async function stopLoop(s: CrashSuite): Promise<void> {
  const loop = s.loop;
  if (!loop) return;
  s.loop = undefined;
  if (loop.child.exitCode !== null || loop.child.signalCode !== null) return;
  loop.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const res = await Promise.race([loop.exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 60_000)))]);
  clearTimeout(timer);
  if (!res) {
    loop.child.kill('SIGKILL');
    await loop.exited;
    throw new Error('acetate run did not exit within 60 s of SIGTERM');
  }
}

/** One trial under `acetate run`: change the files, SIGKILL the loop at a random moment, start it again. */
export async function runCrashTrial(s: CrashSuite, rng: Rng, trial: number, log: (m: string) => void): Promise<void> {
  if (!s.loop) startLoop(s);
  const { next, changes } = mutate(s.model, s.universe, rng);
  const loop = s.loop!;
  const offset = loop.out().length;
  await writeModel(s.dir, next);
  const delay = rng.int(Math.round(workEstimate(s, changes) + 200));
  await new Promise((r) => setTimeout(r, delay));
  const midway = loop.child.exitCode === null;
  loop.child.kill('SIGKILL');
  await loop.exited;
  const k = {
    midway,
    done: (
      loop
        .out()
        .slice(offset)
        .match(/"result":/g) ?? []
    ).length,
  };
  s.loop = undefined;
  s.stats.trials++;
  s.stats.kills++;
  if (k.midway) s.stats.killsMidway++;
  s.stats.actionsPlanned += changes;
  s.stats.actionsDoneBeforeKill += k.done;
  assert.equal(loop.child.signalCode, 'SIGKILL', `trial ${trial}: acetate run had exited before the kill:\n${loop.err().slice(-3000)}`);
  log(`trial ${trial} (run): ${changes} changes, SIGKILL at ${delay} ms (${k.done} done)`);
  for (const [name, c] of next) c.marker = s.model.get(name)?.marker;
  s.model = next;
  startLoop(s);
  await expectConverged(s, `trial ${trial} (run)`, 120_000);
}

/**
 * A deterministic crash point found by the random trials: acetate is killed in the middle of a
 * stop, after the container's process died and before `runc delete` and the unmount. The next
 * acetate sees the process exited and the container declared Stopped; it must finish the stop
 * (runc state, mount and cgroups gone, phase Stopped), not leave them behind.
 */
export async function interruptedStop(): Promise<void> {
  const stateDir = await makeTmpStateDir('acetate-chaos-stop-');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-chaos-stop-m-'));
  try {
    const model: Model = new Map([['s0', { state: 'Running', memoryMi: 48, variant: 0 }]]);
    await writeModel(dir, model);
    assert.equal((await runCli(['apply', '-f', dir], { stateDir })).code, 0);
    await waitFor(() => allMarkersWritten(stateDir, model), { what: 'marker', timeoutMs: 20_000 });
    const pid = flatContainers((await runCli(['get', '-o', 'json'], { stateDir })).stdout)[0]!.pid!;
    // The stop got as far as killing the process; acetate died before cleaning up.
    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () => !(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).length || (await readFile(`/proc/${pid}/stat`, 'utf8')).includes(') Z'),
      { what: 'process gone' },
    );
    model.get('s0')!.state = 'Stopped';
    await writeModel(dir, model);
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    let last: string[] = [];
    await waitFor(
      async () => {
        last = await convergenceProblems(stateDir, model);
        return last.length === 0;
      },
      { what: 'the interrupted stop finished', timeoutMs: 10_000 },
    ).catch((err: unknown) => {
      throw new Error(`after the next apply:\n  ${last.join('\n  ')}\napply said:\n${r.stdout}`, { cause: err });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await runCli(['apply', '-f', dir, '--allow-empty'], { stateDir }).catch(() => undefined);
    await cleanupStateDir(stateDir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes every container through acetate, then checks that nothing at all is left. */
export async function teardownCrashSuite(s: CrashSuite | undefined): Promise<void> {
  if (!s) return;
  try {
    await stopLoop(s).catch(() => undefined);
    s.model = new Map();
    await writeModel(s.dir, s.model);
    const r = await runCli(['apply', '-f', s.dir, '--allow-empty', '--concurrency', String(s.concurrency)], { stateDir: s.stateDir, timeoutMs: 600_000 });
    assert.equal(r.code, 0, `final destroy failed:\n${r.stderr}`);
    await assertNoLeaks(s.stateDir, { waitMs: 10_000 });
  } finally {
    if (s.loop) s.loop.child.kill('SIGKILL');
    await cleanupStateDir(s.stateDir).catch(() => undefined);
    await rm(s.dir, { recursive: true, force: true });
  }
}

export function describeStats(st: CrashStats): string {
  return `${st.trials} trials, ${st.kills} SIGKILLs (${st.killsMidway} while acetate was working, ${st.recoveryKills} during recovery), ${st.actionsPlanned} changes planned, ${st.actionsDoneBeforeKill} reported done before a kill; lost private areas ${st.lostPrivateAreas}, duplicates ${st.duplicates}, leaks ${st.leaks}`;
}

export type { ModelContainer };
