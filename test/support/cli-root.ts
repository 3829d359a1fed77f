/**
 * One root dir for a test of the CLI that wants everything of its instance in one place: the state
 * dir (not created: acetate creates it), a run dir outside it (as /run/acetate is outside
 * /var/lib/acetate) and a dir of manifests. Torn down the way a user would: nothing declared,
 * `apply` destroys it all, and nothing may be left.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { assertNoLeaks, cleanupStateDir } from './leaks.js';
import type { TestNetwork } from './network-leaks.js';

export interface CliRoot {
  root: string;
  stateDir: string;
  runDir: string;
  /** The manifests (-f), created empty. */
  dir: string;
}

/** userns: the root is 0711, so a container's unprivileged root (user namespaces) can walk to its private area. */
export async function makeCliRoot(prefix: string, opts: { userns?: boolean } = {}): Promise<CliRoot> {
  const root = await mkdtemp(path.join('/tmp', prefix));
  if (opts.userns) await chmod(root, 0o711);
  const dir = path.join(root, 'manifests');
  await mkdir(dir);
  return { root, stateDir: path.join(root, 'state'), runDir: path.join(root, 'run'), dir };
}

/**
 * Empties the manifests dir and applies it (apply: the test's own, with its env), asserts that
 * nothing is left; whatever happened, cleans the instance up and removes the root. runDir: only
 * when the test gave acetate the run dir (ACETATE_RUN_DIR).
 */
export async function destroyAllAndAssertNoLeaks(
  r: Omit<CliRoot, 'runDir'> & { runDir?: string; network?: TestNetwork; apply: () => Promise<unknown> },
): Promise<void> {
  await rm(r.dir, { recursive: true, force: true });
  await mkdir(r.dir);
  await r.apply().catch(() => undefined);
  try {
    await assertNoLeaks(r.stateDir, { runDir: r.runDir, network: r.network });
  } finally {
    await cleanupStateDir(r.stateDir, { runDir: r.runDir, network: r.network }).catch(() => undefined);
    await rm(r.root, { recursive: true, force: true });
  }
}
