/**
 * What a suite needs before it can test anything. A suite must never pass with nothing run: a
 * prerequisite of the suite itself (root, runc, conmon, a built file) that is missing is a
 * failure that names it (requirePrerequisites). Skipping is only for what is truly optional (a
 * real cluster, kubectl), and always says why (skipBecause). test/unit/suite-guards.test.ts
 * holds every test file to this: no bare this.skip(), describe.skip or it.skip.
 */
import { findBinary } from '../../src/util/find-binary.js';

/** Throws, naming what is missing and how to get it, when `missing` is not empty. */
export function requirePrerequisites(missing: string[], what: string): void {
  if (missing.length) throw new Error(`${what} needs ${missing.join(', ')}: run the tests as root on a node set up by \`npm run setup\` (scripts/setup.sh)`);
}

/** What is missing to run real containers: root, runc and conmon. */
export async function missingForContainers(): Promise<string[]> {
  const missing = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const b of ['runc', 'conmon']) if (!(await findBinary(b).catch(() => undefined))) missing.push(b);
  return missing;
}

/** Skips the current test or hook (and the rest of its suite, from a before hook), printing why. */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  console.log(`    (skipped: ${reason})`);
  ctx.skip();
}
