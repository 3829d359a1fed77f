/**
 * Runtime faults: a runc that fails or hangs for chosen calls, a full disk under the state dir, a
 * template removed underneath running containers. In every case acetate must report the fault,
 * never crash, never destroy (or lose the private area of) a container that is still declared,
 * and converge once the fault is gone.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { cgroupValue } from '../support/proc.js';
import { exec } from '../../src/util/exec.js';
import {
  allMarkersWritten,
  assertNoCrash,
  cloneModel,
  convergenceProblems,
  getAll,
  killHungRuncs,
  makeFaultyRunc,
  runCli,
  spawnCli,
  waitFor,
  writeAtomic,
  writeModel,
  type CliResult,
  type FaultyRunc,
  type Model,
  type Rng,
} from './lib.js';
import { mutate } from './crash.js';

export interface FaultStats {
  scenarios: number;
  faultsInjected: number;
  containersLost: number;
}

export const faultStats: FaultStats = { scenarios: 0, faultsInjected: 0, containersLost: 0 };

interface Env {
  root: string;
  stateDir: string;
  dir: string;
  model: Model;
  runc: FaultyRunc;
}

const MI = 1024 * 1024;

async function withEnv<T>(opts: { stateDir?: string; n: number }, fn: (e: Env) => Promise<T>): Promise<T> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'acetate-fault-'));
  const stateDir = opts.stateDir ?? (await makeTmpStateDir('acetate-fault-s-'));
  const dir = path.join(root, 'manifests');
  const model: Model = new Map();
  for (let i = 0; i < opts.n; i++) model.set(`f${i}`, { state: 'Running', memoryMi: 48, variant: 0 });
  const e: Env = { root, stateDir, dir, model, runc: await makeFaultyRunc(path.join(root, 'runc')) };
  let failure: unknown;
  let out: T | undefined;
  try {
    if (opts.n) {
      await writeModel(dir, model);
      const r = await apply(e);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(() => allMarkersWritten(stateDir, model), { what: 'markers', timeoutMs: 30_000 });
    } else await mkdir(dir, { recursive: true });
    out = await fn(e);
    faultStats.scenarios++;
  } catch (err) {
    failure = err;
  }
  // Clean up whatever happened: clear the faults, destroy everything through acetate, check.
  faultStats.faultsInjected += (await e.runc.injected()).length;
  await killHungRuncs(e.runc.binDir);
  await e.runc.clear();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  await runCli(['apply', '-f', dir, '--allow-empty'], { stateDir, timeoutMs: 300_000 }).catch(() => undefined);
  let leak: unknown;
  try {
    await assertNoLeaks(stateDir, { waitMs: 10_000 });
  } catch (err) {
    leak = err;
  } finally {
    await cleanupStateDir(stateDir).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
  if (failure !== undefined) {
    // Report the scenario's own failure; leaks after a failure are a consequence.
    if (leak) console.log(`      (after the failure) ${(leak as Error).message}`);
    throw failure;
  }
  if (leak) throw leak;
  return out as T;
}

function apply(e: Env, withFaults = false, extra: string[] = []): Promise<CliResult> {
  return runCli(['apply', '-f', e.dir, '--allow-empty', ...extra], { stateDir: e.stateDir, env: withFaults ? e.runc.env() : {}, timeoutMs: 300_000 });
}

async function pids(stateDir: string): Promise<Map<string, number | undefined>> {
  return new Map((await getAll(stateDir)).map((c) => [c.name, c.pid]));
}

async function converge(e: Env, what: string): Promise<void> {
  await e.runc.clear();
  const r = await apply(e);
  assertNoCrash(r, `${what}: apply after the fault cleared`);
  assert.equal(r.code, 0, `${what}: apply after the fault cleared failed:\n${r.stderr}\n${r.stdout}`);
  await waitConverged(e, { what: `${what}: converged`, failure: `${what}: not converged after the fault cleared` }, (left) => {
    faultStats.containersLost += left.filter((p) => /private area lost|not listed/.test(p)).length;
  });
}

/**
 * Waits until every container of the model runs as declared with its marker; if it does not
 * within 30 s, hands what is still wrong to onTimeout and throws `failure` listing it.
 */
async function waitConverged(e: Env, o: { what: string; failure: string }, onTimeout?: (problems: string[]) => void): Promise<void> {
  let last: string[] = [];
  await waitFor(
    async () => {
      await allMarkersWritten(e.stateDir, e.model);
      last = await convergenceProblems(e.stateDir, e.model);
      return last.length === 0;
    },
    { what: o.what, timeoutMs: 30_000, intervalMs: 200 },
  ).catch((err: unknown) => {
    onTimeout?.(last);
    throw new Error(`${o.failure}:\n  ${last.join('\n  ')}`, { cause: err });
  });
}

/**
 * Starting one new container fails in runc. acetate starts a created container through runc's exec
 * fifo (no `runc start` process), so the fault is injected into the `runc create` conmon runs for
 * it: the last runc call of a start.
 */
const START_FNEW = ' create .*default_fnew';

/** runc fails to start one new container: reported, others converge, nothing half-created leaks. */
export async function runcStartFails(): Promise<void> {
  await withEnv({ n: 3 }, async (e) => {
    const before = await pids(e.stateDir);
    e.model.set('fnew', { state: 'Running', memoryMi: 48, variant: 0 });
    e.model.get('f0')!.memoryMi = 80;
    await writeModel(e.dir, e.model);
    await e.runc.set([{ match: START_FNEW, mode: 'fail' }]);
    const r = await apply(e, true);
    assertNoCrash(r, 'apply with runc start failing');
    assert.equal(r.code, 1, `a failed action must make apply exit 1\n${r.stdout}`);
    assert.match(r.stderr, /default\/fnew.*injected fault/, 'the error names the container and says what runc said');
    const after = await pids(e.stateDir);
    for (const n of ['f0', 'f1', 'f2']) assert.equal(after.get(n), before.get(n), `${n} was restarted`);
    assert.equal(await cgroupValue(after.get('f0')!, 'memory', 'memory.limit_in_bytes'), String(80 * MI), 'f0 resized despite the other failure');
    assert.ok((await e.runc.injected()).length >= 1);
    const inv = await convergenceProblems(e.stateDir, new Map([...e.model].filter(([n]) => n !== 'fnew')), { checkMarkers: true });
    assert.deepEqual(
      inv.filter((p) => !p.includes('fnew')),
      [],
      'nothing else is off',
    );
    assert.ok(!inv.some((p) => /conmon|mounted|runc state|cgroups/.test(p)), `the failed start left things behind:\n${inv.join('\n')}`);
    await converge(e, 'runc start failing');
  });
}

/**
 * Under `acetate run`: runc start keeps failing for one new container. The loop reports it,
 * retries with growing back-off (not in a tight loop), leaves the others alone, keeps running,
 * and starts the container once the fault clears.
 */
export async function runcFailsUnderLoop(): Promise<void> {
  await withEnv({ n: 2 }, async (e) => {
    const before = await pids(e.stateDir);
    await e.runc.set([{ match: START_FNEW, mode: 'fail' }]);
    const loop = spawnCli(['run', '-f', e.dir, '--metrics-addr', '0', '--log-format', 'json'], {
      stateDir: e.stateDir,
      env: { ...e.runc.env(), ACETATE_BACKOFF_BASE_MS: '200', ACETATE_BACKOFF_MAX_MS: '3200' },
    });
    try {
      await waitFor(() => loop.out().includes('ready: first sync done'), { what: 'acetate run ready', timeoutMs: 30_000 });
      e.model.set('fnew', { state: 'Running', memoryMi: 48, variant: 0 });
      await writeModel(e.dir, e.model);
      const attempts = async (): Promise<number[]> => (await e.runc.injected()).map((l) => Number(l.split(' ')[0]));
      await waitFor(async () => (await attempts()).length >= 4, { what: '4 failed start attempts', timeoutMs: 30_000, intervalMs: 100 });
      const t = await attempts();
      const gaps = t.slice(1).map((x, i) => x - t[i]!);
      assert.ok(gaps[gaps.length - 1]! > gaps[0]!, `retries back off: gaps ${gaps.join(', ')} ms`);
      assert.ok(
        gaps.every((g) => g >= 100),
        `no tight retry loop: gaps ${gaps.join(', ')} ms`,
      );
      assert.ok(
        /default\/fnew/.test(loop.out() + loop.err()) && /injected fault/.test(loop.out() + loop.err()),
        "the loop logs the failure with runc's message",
      );
      assert.equal(loop.child.exitCode, null, 'acetate run keeps running');
      const now = await pids(e.stateDir);
      for (const n of ['f0', 'f1']) assert.equal(now.get(n), before.get(n), `${n} untouched`);
      await e.runc.clear();
      await waitConverged(e, { what: 'the loop converges once the fault clears', failure: 'not converged' });
    } finally {
      loop.child.kill('SIGTERM');
      await loop.exited;
    }
  });
}

/** runc update fails: the container keeps running with its old limit, same pid; resized later. */
export async function runcUpdateFails(): Promise<void> {
  await withEnv({ n: 2 }, async (e) => {
    const before = await pids(e.stateDir);
    e.model.get('f1')!.memoryMi = 96;
    await writeModel(e.dir, e.model);
    await e.runc.set([{ match: ' update .*default_f1 ', mode: 'fail' }]);
    const r = await apply(e, true);
    assertNoCrash(r, 'apply with runc update failing');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /default\/f1/);
    const pid = (await pids(e.stateDir)).get('f1');
    assert.equal(pid, before.get('f1'), 'f1 was not restarted or replaced because of the failure');
    assert.equal(await cgroupValue(pid!, 'memory', 'memory.limit_in_bytes'), String(48 * MI));
    await converge(e, 'runc update failing');
    assert.equal((await pids(e.stateDir)).get('f1'), before.get('f1'), 'resized in place once the fault cleared');
  });
}

/** runc hangs on update: apply times out on that container only, reports it, others converge. */
export async function runcHangs(): Promise<void> {
  await withEnv({ n: 2 }, async (e) => {
    e.model.get('f0')!.memoryMi = 64;
    e.model.get('f1')!.memoryMi = 64;
    await writeModel(e.dir, e.model);
    await e.runc.set([{ match: ' update .*default_f0 ', mode: 'hang' }]);
    const t0 = Date.now();
    const r = await apply(e, true);
    assertNoCrash(r, 'apply with runc hanging');
    assert.equal(r.code, 1, 'the hung call ends in an error, not a hung acetate');
    assert.match(r.stderr, /default\/f0.*(timed out|killed)/);
    assert.match(r.stdout, /resized default\/f1/);
    console.log(`      a hung runc update was given up after ${Math.round((Date.now() - t0) / 1000)} s`);
    await converge(e, 'runc hanging');
  });
}

/**
 * Random faults (fail with probability p on create, start, kill, delete, update, state, list)
 * during rounds of random changes. After each round: acetate exited 0 or 1 (no crash), no declared
 * container lost its private area, containers with no change planned kept their pid.
 */
export async function randomRuncFaults(rng: Rng, rounds: number, n: number, p = 0.25): Promise<void> {
  await withEnv({ n }, async (e) => {
    const universe = Array.from({ length: Math.ceil(n * 1.3) }, (_, i) => `f${i}`);
    const untouched = new Map(await pids(e.stateDir));
    await e.runc.set(
      ['create', 'start', 'kill', 'delete', 'update', 'state', 'list'].map((cmd) => ({ match: ` ${cmd} `, mode: 'fail' as const, probability: p })),
    );
    for (let round = 1; round <= rounds; round++) {
      const { next } = mutate(e.model, universe, rng);
      for (const [name, c] of next) {
        const prev = e.model.get(name);
        c.marker = prev?.marker;
        if (!prev || JSON.stringify({ ...prev, marker: 0 }) !== JSON.stringify({ ...c, marker: 0 })) untouched.delete(name);
      }
      for (const name of e.model.keys()) if (!next.has(name)) untouched.delete(name);
      e.model = next;
      await writeModel(e.dir, e.model);
      const r = await apply(e, true, ['--concurrency', '4']);
      assertNoCrash(r, `round ${round}`);
      const now = await pids(e.stateDir).catch(() => new Map<string, number | undefined>());
      for (const [name, pid] of untouched) {
        assert.equal(now.get(name), pid, `round ${round}: ${name} had no change and was restarted, replaced or destroyed by a fault`);
      }
      for (const [name, c] of e.model) {
        const problems = (await convergenceProblems(e.stateDir, new Map([[name, c]])).catch(() => [])).filter((x) => x.includes('private area lost'));
        assert.deepEqual(problems, [], `round ${round}: ${name}`);
      }
    }
    const injected = (await e.runc.injected()).length;
    console.log(`      ${rounds} rounds, ${injected} runc faults injected`);
    assert.ok(injected > 0, 'faults were injected');
    await converge(e, 'random runc faults');
    for (const [name, pid] of untouched) assert.equal((await pids(e.stateDir)).get(name), pid, `${name} kept its process throughout`);
  });
}

/** The state dir's file system fills up: errors reported, nothing declared lost, recovery when space returns. */
export async function diskFull(): Promise<void> {
  const mnt = await mkdtemp('/tmp/acetate-full-');
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', mnt]);
  const stateDir = path.join(mnt, 'state');
  try {
    await withEnv({ n: 3, stateDir }, async (e) => {
      const before = await pids(e.stateDir);
      // Fill the file system.
      const filler = path.join(mnt, 'filler');
      const fh = await open(filler, 'w');
      const chunk = Buffer.alloc(256 * 1024, 1);
      try {
        for (;;) await fh.write(chunk);
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        await fh.close().catch(() => undefined);
      }
      const next = cloneModel(e.model);
      next.set('fnew1', { state: 'Running', memoryMi: 48, variant: 0 });
      next.set('fnew2', { state: 'Running', memoryMi: 48, variant: 0 });
      next.get('f0')!.memoryMi = 64;
      next.get('f1')!.variant = 1;
      e.model = next;
      await writeModel(e.dir, e.model);
      const r = await apply(e);
      assertNoCrash(r, 'apply on a full disk');
      assert.equal(r.code, 1, 'apply reports failures on a full disk');
      assert.match(r.stderr, /no space left|ENOSPC/i, 'the error says the disk is full');
      const got = await getAll(e.stateDir);
      for (const n of ['f0', 'f2']) assert.equal(got.find((c) => c.name === n)?.pid, before.get(n), `${n} kept running`);
      for (const n of ['f0', 'f1', 'f2']) {
        const lost = (await convergenceProblems(e.stateDir, new Map([[n, e.model.get(n)!]]))).filter((p) => p.includes('private area lost'));
        assert.deepEqual(lost, [], `${n}: private area intact on a full disk`);
      }
      await rm(filler);
      await converge(e, 'disk full');
    });
  } finally {
    await exec('umount', ['-l', mnt]).catch(() => undefined);
    await rm(mnt, { recursive: true, force: true });
  }
}

function templateManifest(name: string, variant: number): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: ${name} }
spec:
  template: bb
  command: ["/bin/sh", "-c", "test -s /marker || cat /proc/sys/kernel/random/uuid > /marker; exec sleep ${1_000_000 + variant}"]
  terminationGracePeriodSeconds: 0
  resources: { memory: 32Mi }
`;
}

/** The template of running containers is deleted behind acetate's back, then imported again. */
export async function templateRemoved(): Promise<void> {
  await withEnv({ n: 0 }, async (e) => {
    const rootfs = await makeBusyboxRootfs(path.join(e.root, 'bb'));
    const imp = await runCli(['template', 'import', 'bb', rootfs], { stateDir: e.stateDir });
    assert.equal(imp.code, 0, imp.stderr);
    await writeFile(path.join(e.dir, 't0.yaml'), templateManifest('t0', 0));
    await writeFile(path.join(e.dir, 't1.yaml'), templateManifest('t1', 0));
    assert.equal((await apply(e)).code, 0);
    const markerModel: Model = new Map([
      ['t0', { state: 'Running', memoryMi: 32, variant: 0 }],
      ['t1', { state: 'Running', memoryMi: 32, variant: 0 }],
    ]);
    await waitFor(() => allMarkersWritten(e.stateDir, markerModel), { what: 'markers', timeoutMs: 20_000 });
    const before = await pids(e.stateDir);

    await rm(path.join(e.stateDir, 'templates', 'bb'), { recursive: true, force: true });
    const same = await apply(e);
    assert.equal(same.code, 0, `nothing changed, nothing to do:\n${same.stderr}`);
    assert.deepEqual(await pids(e.stateDir), before, 'running containers are left alone');

    await writeAtomic(path.join(e.dir, 't1.yaml'), templateManifest('t1', 1));
    await writeFile(path.join(e.dir, 't2.yaml'), templateManifest('t2', 0));
    const r = await apply(e);
    assertNoCrash(r, 'apply with the template gone');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /template 'bb' is not installed/, 'the error says the template is missing');
    const got = await getAll(e.stateDir);
    if (!got.some((c) => c.name === 't1')) {
      faultStats.containersLost++;
      assert.fail(`t1 was destroyed because its template is missing (listed: ${got.map((c) => c.name).join(', ')})`);
    }
    assert.equal(got.find((c) => c.name === 't0')?.pid, before.get('t0'), 't0 untouched');

    const reimp = await runCli(['template', 'import', 'bb', rootfs], { stateDir: e.stateDir });
    assert.equal(reimp.code, 0, reimp.stderr);
    markerModel.get('t1')!.variant = 1;
    markerModel.set('t2', { state: 'Running', memoryMi: 32, variant: 0 });
    const ok = await apply(e);
    assert.equal(ok.code, 0, ok.stderr);
    let last: string[] = [];
    await waitFor(
      async () => {
        await allMarkersWritten(e.stateDir, markerModel);
        last = (await convergenceProblems(e.stateDir, markerModel)).filter((p) => !p.includes('memory in the cgroup'));
        return last.length === 0;
      },
      { what: 'converged after the template came back', timeoutMs: 30_000 },
    ).catch((err: unknown) => {
      throw new Error(`not converged:\n  ${last.join('\n  ')}`, { cause: err });
    });
  });
}
