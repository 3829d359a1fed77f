/** Runs the real acetate CLI (dist/cli/main.js, the bundle bin/acetate loads) as a child process, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

export const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');

/**
 * The suites written before security levels existed mount host dirs, join the host network and
 * run with the node's ids, which the built-in level (baseline, src/policy/node-levels.ts) refuses:
 * every acetate this process starts runs them under privileged unless a test sets the variable
 * itself (test/integration/security-levels.test.ts runs the built-in default and others). Set on
 * process.env so that the tests spawning main.js directly inherit it too.
 */
process.env.ACETATE_POD_SECURITY ??= 'default=privileged';
/** What a user installs and runs (a script that imports CLI). */
export const BIN = path.join(PACKAGE_ROOT, 'bin', 'acetate');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartedCli {
  child: ChildProcess;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
  /** Whether it has exited. */
  exited(): boolean;
  done: Promise<CliResult>;
}

export interface CliOptions {
  stateDir: string;
  env?: NodeJS.ProcessEnv;
  /** SIGKILLed after this long (runCli: default 90 s; startCli: none). */
  timeoutMs?: number;
  /** What runs: default the CLI's script under this node; BIN, as installed (a shell script that execs node). */
  entry?: string;
  /**
   * Cgroup dirs the command runs in from its first instruction (a shell joins them, then execs
   * node), as systemd starts a unit's process in the unit's cgroup.
   */
  cgroups?: readonly string[];
}

/**
 * Tests drive acetate with the node's ids as the default (--host-users=true): until the host
 * template and images can run in a user namespace (idmapped layers), the unprivileged default
 * refuses every container of theirs that does not say hostUsers: true, and the suites that are
 * about something else (most of them use the host template) need them to run. Tests of the
 * default itself pass `env: { ACETATE_HOST_USERS: '' }` (unset: the project's default, false).
 */
export const NODE_IDS_BY_DEFAULT = { ACETATE_HOST_USERS: 'true' } as const;

/** Starts the CLI and returns at once: for a command watched while it runs (it waits, it prints). */
export function startCli(args: string[], opts: CliOptions): StartedCli {
  // bin/acetate is a shell script that execs node (with the loop's flags for `run`): run as a user runs it.
  const entry = opts.entry ?? CLI;
  const argv = [...(entry === BIN ? [] : [process.execPath]), entry, '--state-dir', opts.stateDir, ...args];
  const join = 'for d in $ACETATE_TEST_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 97; done; unset ACETATE_TEST_CGROUPS; exec "$@"';
  const [file, ...rest] = opts.cgroups?.length ? ['/bin/sh', '-c', join, 'sh', ...argv] : argv;
  const child = spawn(file!, rest, {
    env: {
      ...NODE_IDS_BY_DEFAULT,
      ...process.env,
      // Each instance its own node id records (in its state dir, gone with it), so that test files
      // running side by side (and other checkouts' tests on the node) never meet; a test of
      // instances sharing one sets ACETATE_ID_RECORDS itself.
      ACETATE_ID_RECORDS: path.join(opts.stateDir, 'node-id-ranges.json'),
      ...opts.env,
      ...(opts.cgroups?.length ? { ACETATE_TEST_CGROUPS: opts.cgroups.join(' ') } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited: () => exited, done };
}

/** Runs `acetate --state-dir <stateDir> ...args` to its end. */
export function runCli(args: string[], opts: CliOptions): Promise<CliResult> {
  return startCli(args, { ...opts, timeoutMs: opts.timeoutMs ?? 90_000 }).done;
}
