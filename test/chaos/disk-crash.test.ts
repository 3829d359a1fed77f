/**
 * Crash trials with disk limits (see disk-crash.ts): SIGKILL during apply while images are made,
 * grown, shrunk by copying, moved in and out, replaced and destroyed. Replay a failure with
 * ACETATE_CHAOS_SEED=<seed printed at the start>. Sizes: ACETATE_CHAOS_DISK_CONTAINERS (8),
 * ACETATE_CHAOS_DISK_TRIALS (12).
 */
import { chaosSeed, Rng } from './lib.js';
import { diskCrashTrial, setupDiskCrashSuite, teardownDiskCrashSuite, type DiskCrashSuite } from './disk-crash.js';
import { skipBecause } from '../support/prerequisites.js';

const N = Number(process.env.ACETATE_CHAOS_DISK_CONTAINERS ?? 8);
const TRIALS = Number(process.env.ACETATE_CHAOS_DISK_TRIALS ?? 12);
const log = (m: string): void => console.log(`      ${m}`);

describe(`chaos: SIGKILL during apply with disk limits (${N} containers, ${TRIALS} trials)`, function () {
  this.timeout(600_000);
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  const rng = new Rng(chaosSeed('crash/disk'));
  let s: DiskCrashSuite | undefined;

  before(async function () {
    s = await setupDiskCrashSuite(N);
  });

  after(async function () {
    if (s) {
      const t = s.stats;
      log(
        `${t.trials} trials, ${t.kills} SIGKILLs (${t.killsMidway} midway), ${t.changes} changes planned; private areas lost: ${t.lost}; leaked: ${t.leaked}`,
      );
    }
    await teardownDiskCrashSuite(s);
  });

  for (let t = 1; t <= TRIALS; t++) {
    it(`trial ${t}: converges after a SIGKILL, no private area lost, no loop device, mount or image leaked`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await diskCrashTrial(s!, rng.fork(`disk-${t}`), t, log);
    });
  }
});
