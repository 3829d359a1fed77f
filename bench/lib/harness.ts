/**
 * The two sides every benchmark compares, set up the same way: an acetate instance (state dir,
 * run dir, manifest dir; the CLI run as bin/acetate runs it, its CPU measured) and the bare loop
 * (bench/baseline's scripts with the same OCI config). Both are removed by the run's cleanups.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import type { Cleanups } from './cleanup.js';
import { cleanupStateDir } from './leaks.js';
import { CpuGroup, measure, type Measured } from './sys.js';
import { baselineConfigTemplate, getWorkRoot, tmpDir } from './workload.js';
import { writeBaselineTemplate, type AcetateTemplate } from './acetate-config.js';

export const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
// The benchmarks measure the runtime, not the security levels: their containers (host ids, host
// network, mounts) run under privileged, as the test suites do (test/support/cli.ts).
process.env.ACETATE_POD_SECURITY ??= 'default=privileged';
/**
 * The node flags bin/acetate gives `acetate run` (its LOOP_NODE_FLAGS): the loop and the no-op
 * pass are measured as users run them. The short commands (get, plan, apply) run without flags.
 */
export const LOOP_NODE_FLAGS = (/^LOOP_NODE_FLAGS="([^"]*)"$/m.exec(readFileSync(path.join(PACKAGE_ROOT, 'bin', 'acetate'), 'utf8'))?.[1] ?? '')
  .trim()
  .split(/\s+/)
  .filter(Boolean);
if (LOOP_NODE_FLAGS.length === 0) throw new Error('bin/acetate names no LOOP_NODE_FLAGS: the benchmark would measure the loop without its flags');
const CPU_REPORT = path.join(PACKAGE_ROOT, 'dist', 'bench', 'lib', 'cpu-report.js');
/** bench/noop-pass.ts, built: one process timing no-op reconcile passes. */
export const NOOP = path.join(PACKAGE_ROOT, 'dist', 'bench', 'noop-pass.js');
/** The bare loop's scripts. */
export const BASELINE = path.join(PACKAGE_ROOT, 'bench', 'baseline');

export const log = (m: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);

export function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

export interface Instance {
  stateDir: string;
  /** Its run dir (under the run root), given to every acetate process as $ACETATE_RUN_DIR. */
  runDir: string;
  dir: string;
  env: { ACETATE_RUN_DIR: string; ACETATE_HOST_USERS?: string };
  cleanup: () => Promise<void>;
}

export interface Baseline {
  work: string;
  template: string;
  /** RUN_DIR of the bare loop's scripts: its runc root and bundles, next to acetate's run dirs. */
  env: { RUN_DIR: string };
  cleanup: () => Promise<void>;
}

export interface ListedContainer {
  name: string;
  phase: string;
  pid?: number;
}

export interface Harness {
  /** The parent of every run dir of the run (see prepareRunRoot). */
  runRoot: string;
  cpuGroup: CpuGroup;
  cleanups: Cleanups;
  newInstance(): Promise<Instance>;
  /**
   * A bare loop. With `acetate`, its config is that template (acetate's own config, see
   * acetate-config.ts) with the loop's own cgroup parent and dirs; else the config rebuilt by
   * workload.ts's baselineConfigTemplate (rootfs mounted by create.sh).
   */
  newBaseline(opts?: { acetate?: AcetateTemplate }): Promise<Baseline>;
  /** `acetate --state-dir … <args>` in the cpu group, with its own CPU reported. */
  acetate(inst: Instance, args: string[], extraNode?: string[]): Promise<Measured>;
  /** `acetate get -o json`, flattened. */
  listJson(inst: Instance): Promise<ListedContainer[]>;
}

export function createHarness(opts: { runRoot: string; cpuGroup: CpuGroup; cleanups: Cleanups }): Harness {
  const { runRoot, cpuGroup, cleanups } = opts;

  async function newInstance(): Promise<Instance> {
    const stateDir = await tmpDir('acetate-bench-s-');
    const runDir = await mkdtemp(path.join(runRoot, 'acetate-bench-r-'));
    const dir = await tmpDir('acetate-bench-m-');
    const cleanup = cleanups.add(async () => {
      await cleanupStateDir(stateDir, { runDir });
      await rm(dir, { recursive: true, force: true });
    });
    // The benchmarks' host-template containers run with the node's ids, as they were measured:
    // the host template cannot run in a user namespace until its layers are mounted idmapped.
    // A benchmark of the unprivileged default sets ACETATE_HOST_USERS: '' in its instance's env.
    return { stateDir, runDir, dir, env: { ACETATE_RUN_DIR: runDir, ACETATE_HOST_USERS: 'true' }, cleanup };
  }

  async function newBaseline(opts: { acetate?: AcetateTemplate } = {}): Promise<Baseline> {
    const root = await tmpDir('acetate-bench-b-');
    const run = await mkdtemp(path.join(runRoot, 'acetate-bench-b-'));
    let file: string;
    if (opts.acetate) {
      file = path.join(root, 'config.template.json');
      await writeBaselineTemplate(opts.acetate, file, {
        cgroupParent: `acetate-bench-base-${path.basename(root).replace(/[^a-zA-Z0-9]/g, '')}`,
        stateDir: root,
        runDir: run,
      });
    } else ({ file } = await baselineConfigTemplate(root));
    const work = path.join(root, 'w');
    const env = { RUN_DIR: run };
    const cleanup = cleanups.add(async () => {
      await measure('bash', [path.join(BASELINE, 'cleanup.sh'), work, file], { env });
      await rm(root, { recursive: true, force: true });
      await rm(run, { recursive: true, force: true });
    });
    return { work, template: file, env, cleanup };
  }

  function acetate(inst: Instance, args: string[], extraNode: string[] = []): Promise<Measured> {
    const cpuFile = path.join(inst.dir, '..', `${path.basename(inst.dir)}.cpu.json`);
    return measure(process.execPath, [...LOOP_NODE_FLAGS, ...extraNode, '--import', CPU_REPORT, CLI, '--state-dir', inst.stateDir, ...args], {
      group: cpuGroup,
      cpuFile,
      env: { ACETATE_BENCH_CPU_FILE: cpuFile, ...inst.env },
      timeoutMs: 3_600_000,
    }).finally(() => rm(cpuFile, { force: true }));
  }

  async function listJson(inst: Instance): Promise<ListedContainer[]> {
    const r = await measure(process.execPath, [...LOOP_NODE_FLAGS, CLI, '--state-dir', inst.stateDir, 'get', '-o', 'json'], { env: inst.env });
    if (r.code !== 0) throw new Error(`acetate get failed: ${r.stderr}`);
    // Container objects (Kubernetes' shape) in a List.
    const list = JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { phase?: string; pid?: number } }[] };
    return list.items.map((o) => ({ name: o.metadata.name, phase: o.status?.phase ?? 'Unknown', pid: o.status?.pid }));
  }

  return { runRoot, cpuGroup, cleanups, newInstance, newBaseline, acetate, listJson };
}

/**
 * The run root: under /run when that is a tmpfs (as on systemd hosts and Kubernetes nodes, where
 * acetate's /run/acetate is), else on a tmpfs mounted for this run, so that acetate's run dir and
 * the bare loop's runc root are where they would be on a node. `--run-root` (given) overrides.
 */
export async function prepareRunRoot(given: string | undefined, cleanups: Cleanups): Promise<{ dir: string; fs: string }> {
  if (given) {
    await mkdir(given, { recursive: true, mode: 0o700 });
    return { dir: given, fs: (await measure('stat', ['-f', '-c', '%T', given])).stdout.trim() };
  }
  if ((await measure('stat', ['-f', '-c', '%T', '/run'])).stdout.trim() === 'tmpfs') {
    const dir = await mkdtemp('/run/acetate-bench-');
    cleanups.add(() => rm(dir, { recursive: true, force: true }));
    return { dir, fs: 'tmpfs (/run)' };
  }
  const dir = path.join(getWorkRoot(), 'run');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const m = await measure('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=2g', 'acetate-bench-run', dir]);
  check(m.code === 0, `cannot mount a tmpfs on ${dir}: ${m.stderr}`);
  cleanups.add(async () => {
    await measure('umount', [dir]);
    await rmdir(dir).catch(() => undefined);
  });
  return { dir, fs: 'tmpfs (mounted by the benchmark: /run is not a tmpfs here)' };
}

/** Running containers in a runc root. */
export async function runcCount(root: string): Promise<number> {
  const r = await measure('runc', ['--root', root, 'list', '--format', 'json']);
  return ((JSON.parse(r.stdout.trim() || 'null') as { status: string }[] | null) ?? []).filter((s) => s.status === 'running').length;
}
