/**
 * Load: 500 manifests edited at random by several concurrent writers for a minute while
 * `acetate run` reconciles; afterwards the node must equal the final files exactly (and no
 * private area of a container that stayed declared was lost). Full suite only.
 * Sizes: ACETATE_LOAD_CONTAINERS (500), ACETATE_LOAD_WRITERS (4), ACETATE_LOAD_SECONDS (60).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import {
  Rng,
  allMarkersWritten,
  chaosSeed,
  chaosManifest,
  convergenceProblems,
  runCli,
  spawnCli,
  waitFor,
  writeAtomic,
  writeModel,
  type Model,
  type RunningCli,
} from './lib.js';

const N = Number(process.env.ACETATE_LOAD_CONTAINERS ?? 500);
const WRITERS = Number(process.env.ACETATE_LOAD_WRITERS ?? 4);
const SECONDS = Number(process.env.ACETATE_LOAD_SECONDS ?? 60);
const name = (i: number): string => `l${String(i).padStart(3, '0')}`;

describe(`chaos: ${N} manifests edited by ${WRITERS} writers for ${SECONDS} s under acetate run`, function () {
  this.timeout(1_800_000);
  const rng = new Rng(chaosSeed('load'));
  let stateDir: string;
  let dir: string;
  let loop: RunningCli | undefined;
  const model: Model = new Map();

  before(async () => {
    stateDir = await makeTmpStateDir('acetate-load-');
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-load-m-'));
    for (let i = 0; i < N; i++) model.set(name(i), { state: 'Running', memoryMi: 32 + 8 * rng.int(9), variant: 0 });
    await writeModel(dir, model);
  });

  after(async () => {
    try {
      if (loop && loop.child.exitCode === null) {
        loop.child.kill('SIGTERM');
        await loop.exited;
      }
      model.clear();
      await writeModel(dir, model);
      const r = await runCli(['apply', '-f', dir, '--allow-empty', '--concurrency', '8'], { stateDir, timeoutMs: 900_000 });
      assert.equal(r.code, 0, r.stderr);
      await assertNoLeaks(stateDir, { waitMs: 20_000 });
    } finally {
      await cleanupStateDir(stateDir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('converges on the final files: nothing missing, extra, duplicated, leaked or lost', async () => {
    const t0 = Date.now();
    loop = spawnCli(['run', '-f', dir, '--concurrency', '8', '--metrics-addr', '0', '--log-format', 'json', '--resync', '10s', '--relist', '10s'], {
      stateDir,
      env: { ACETATE_BACKOFF_BASE_MS: '200', ACETATE_BACKOFF_MAX_MS: '5000' },
    });
    let last: string[] = [];
    const converged = async (what: string, timeoutMs: number): Promise<void> => {
      await waitFor(
        async () => {
          assert.equal(loop!.child.exitCode, null, `acetate run exited:\n${loop!.err().slice(-3000)}`);
          await allMarkersWritten(stateDir, model);
          last = await convergenceProblems(stateDir, model);
          return last.length === 0;
        },
        { what, timeoutMs, intervalMs: 2000 },
      ).catch((err: unknown) => {
        throw new Error(`${what}: ${last.length} problems:\n  ${last.slice(0, 40).join('\n  ')}`, { cause: err });
      });
    };
    await converged(`initial convergence of ${N} containers`, 900_000);
    console.log(`      ${N} containers created and running after ${Math.round((Date.now() - t0) / 1000)} s`);

    // Writers: writer w owns the files whose index ≡ w (mod WRITERS), so the last write of each
    // file is known; between them they edit at random for SECONDS.
    const counts = { resize: 0, replace: 0, toggle: 0, delete: 0, add: 0 };
    const deadline = Date.now() + SECONDS * 1000;
    const writer = async (w: number): Promise<void> => {
      const r = rng.fork(`writer-${w}`);
      const mine = Array.from({ length: N }, (_, i) => i).filter((i) => i % WRITERS === w);
      while (Date.now() < deadline) {
        const n = name(r.pick(mine));
        const file = path.join(dir, `${n}.yaml`);
        const c = model.get(n);
        const roll = r.next();
        if (!c) {
          model.set(n, { state: 'Running', memoryMi: 32 + 8 * r.int(9), variant: 0 });
          await writeAtomic(file, chaosManifest(n, model.get(n)!));
          counts.add++;
        } else if (roll < 0.6) {
          c.memoryMi = 32 + 8 * r.int(9);
          await writeAtomic(file, chaosManifest(n, c));
          counts.resize++;
        } else if (roll < 0.75) {
          c.variant++;
          await writeAtomic(file, chaosManifest(n, c));
          counts.replace++;
        } else if (roll < 0.85) {
          c.state = c.state === 'Running' ? 'Stopped' : 'Running';
          await writeAtomic(file, chaosManifest(n, c));
          counts.toggle++;
        } else if (roll < 0.93) {
          model.delete(n);
          await rm(file);
          counts.delete++;
        } else {
          // touch without a change (editors do that)
          await writeAtomic(file, chaosManifest(n, c));
        }
        await new Promise((res) => setTimeout(res, r.between(20, 200)));
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    const edits = Object.values(counts).reduce((a, b) => a + b, 0);
    const tEdits = Date.now();
    console.log(
      `      ${edits} edits (${Object.entries(counts)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}); ${model.size} containers declared at the end`,
    );
    await converged('convergence on the final files', 600_000);
    const rss = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${loop.child.pid}/status`, 'utf8'))?.[1];
    console.log(`      converged ${Math.round((Date.now() - tEdits) / 1000)} s after the last edit; acetate run RSS ${Math.round(Number(rss) / 1024)} MiB`);
    // plan, not apply: the loop holds the state dir's lock (an apply beside it exits 1 naming it).
    const again = await runCli(['plan', '-f', dir, '--allow-empty'], { stateDir });
    assert.equal(again.code, 0, `plan sees something left to do:\n${again.stdout}`);
    assert.match(again.stdout, /No changes/, 'plan agrees nothing is left to do');
  });
});
