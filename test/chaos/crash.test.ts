/**
 * Full crash suite: SIGKILL acetate at random moments while it converges 50 containers, at least
 * 20 seeded trials under `acetate apply` and 10 under `acetate run`. Replay a failure with
 * ACETATE_CHAOS_SEED=<seed printed at the start>. Sizes: ACETATE_CHAOS_CONTAINERS (50),
 * ACETATE_CHAOS_TRIALS (20), ACETATE_CHAOS_RUN_TRIALS (10).
 */
import { Rng, chaosSeed } from './lib.js';
import { applyCrashTrial, describeStats, interruptedStop, runCrashTrial, setupCrashSuite, stopLoop, teardownCrashSuite, type CrashSuite } from './crash.js';
import { skipBecause } from '../support/prerequisites.js';

const N = Number(process.env.ACETATE_CHAOS_CONTAINERS ?? 50);
const TRIALS = Number(process.env.ACETATE_CHAOS_TRIALS ?? 20);
const RUN_TRIALS = Number(process.env.ACETATE_CHAOS_RUN_TRIALS ?? 10);
const log = (m: string): void => console.log(`      ${m}`);

describe('chaos: a stop interrupted after the process died', function () {
  this.timeout(120_000);
  it('the next apply finishes it: no runc state, mount or cgroup left, phase Stopped', interruptedStop);
});

describe(`chaos: SIGKILL during apply (${N} containers, ${TRIALS} trials)`, function () {
  this.timeout(600_000);
  // Trials build on each other's end state: after a failure the rest would only repeat it.
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  const rng = new Rng(chaosSeed('crash/apply'));
  let s: CrashSuite | undefined;

  before(async function () {
    s = await setupCrashSuite(N, 4);
    log(`created ${N} containers in ${s.fullApplyMs} ms`);
  });

  after(async function () {
    if (s) log(describeStats(s.stats));
    await teardownCrashSuite(s);
  });

  for (let t = 1; t <= TRIALS; t++) {
    it(`trial ${t}: converges after a SIGKILL, nothing lost, duplicated or leaked`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await applyCrashTrial(s!, rng.fork(`apply-${t}`), t, log);
    });
  }
});

describe(`chaos: SIGKILL during acetate run (${N} containers, ${RUN_TRIALS} trials)`, function () {
  this.timeout(600_000);
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  const rng = new Rng(chaosSeed('crash/run'));
  let s: CrashSuite | undefined;

  before(async function () {
    s = await setupCrashSuite(N, 4);
  });

  after(async function () {
    if (s) {
      await stopLoop(s).catch(() => undefined);
      log(describeStats(s.stats));
    }
    await teardownCrashSuite(s);
  });

  for (let t = 1; t <= RUN_TRIALS; t++) {
    it(`trial ${t}: the restarted loop converges, nothing lost, duplicated or leaked`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await runCrashTrial(s!, rng.fork(`run-${t}`), t, log);
    });
  }
});
