/**
 * Temporary acetate state dirs for tests. Their cleanup (cleanupStateDir, in leaks.ts) leaves the
 * node as it was: every container removed (private areas too), anything still mounted under the
 * dir unmounted, stray runc state, processes and cgroups of the instance removed, the dir deleted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { assertNoLeaks, cleanupStateDir } from './leaks.js';
import type { TestNetwork } from './network-leaks.js';

export { cleanupStateDir };

/** A fresh state dir under /tmp (e.g. /tmp/acetate-state-AbC123). */
export async function makeTmpStateDir(prefix = 'acetate-state-'): Promise<string> {
  // /tmp rather than os.tmpdir(): short paths keep conmon's attach socket path within limits.
  return mkdtemp(path.join(os.platform() === 'linux' ? '/tmp' : os.tmpdir(), prefix));
}

/** A RuncRuntime with its TemplateStore on a state dir. */
export function makeRuntime(
  stateDir: string,
  extra: { runcPath?: string; conmonPath?: string; runDir?: string; sweepLeftovers?: boolean; network?: TestNetwork } = {},
): RuncRuntime {
  const { network, ...rest } = extra;
  // The test is the only process changing this state dir: it may sweep, as a lock holder does.
  // A test network: checked in depth at every get() (no 60 s throttle).
  // Its own node id records (in the state dir, gone with it): test files running side by side never meet.
  return new RuncRuntime({
    stateDir,
    templates: new TemplateStore({ stateDir }),
    isolation: { idRecords: path.join(stateDir, 'node-id-ranges.json') },
    sweepLeftovers: true,
    ...rest,
    ...(network ? { network: { ...network, deepCheckIntervalMs: 0 } } : {}),
  });
}

export interface TmpState {
  dir: string;
  runtime: RuncRuntime;
  templates: TemplateStore;
  cleanup(): Promise<void>;
  /** cleanup(), then assert that nothing is left behind: mounts, cgroups, runc state, processes, the dir. */
  cleanupAndAssertNoLeaks(): Promise<void>;
}

/**
 * mkdtemp + runtime; call cleanup() in afterEach/after. `runDir`: a run dir of its own (removed by
 * cleanup too); `conmonPath`: another conmon (a wrapper around the real one).
 */
export async function tmpState(prefix?: string, opts: { runDir?: string; network?: TestNetwork; conmonPath?: string } = {}): Promise<TmpState> {
  const dir = await makeTmpStateDir(prefix);
  const runtime = makeRuntime(dir, { runDir: opts.runDir, network: opts.network, ...(opts.conmonPath ? { conmonPath: opts.conmonPath } : {}) });
  const cleanup = (): Promise<void> => cleanupStateDir(dir, { runtime, runDir: opts.runDir, network: opts.network });
  return {
    dir,
    runtime,
    templates: runtime.templates,
    cleanup,
    async cleanupAndAssertNoLeaks() {
      await cleanup();
      await assertNoLeaks(dir, { dirRemoved: true, runDir: opts.runDir, network: opts.network });
    },
  };
}

/**
 * The hooks of a suite on one state dir: before it, `set` receives a fresh tmpState (its runtime
 * preflighted with `preflight`, so a missing runc or conmon fails there); after it, everything is
 * cleaned up and nothing may be left behind.
 */
export function tmpStateForSuite(set: (st: TmpState) => void, opts: { preflight?: boolean } = {}): void {
  let st: TmpState | undefined;
  before(async () => {
    st = await tmpState();
    set(st);
    if (opts.preflight) await st.runtime.preflight();
  });
  after(async () => {
    await st?.cleanupAndAssertNoLeaks();
  });
}

/** A state dir (--state-dir) and a dir of manifests (-f), as a user of the CLI has them. */
export interface CliDirs {
  stateDir: string;
  dir: string;
  /** Every container removed, both dirs deleted; then asserts that nothing is left behind. */
  cleanupAndAssertNoLeaks(): Promise<void>;
}

/**
 * `network`: the test's own bridge and subnet (testNetwork()); its containers' veths, rules and
 * leases are removed and checked too.
 */
export async function cliDirs(opts: { network?: TestNetwork } = {}): Promise<CliDirs> {
  const stateDir = await makeTmpStateDir();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-manifests-'));
  const network = opts.network;
  return {
    stateDir,
    dir,
    async cleanupAndAssertNoLeaks() {
      await cleanupStateDir(stateDir, { network });
      await assertNoLeaks(stateDir, { network });
      await rm(stateDir, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
