/**
 * One launcher process per runtime (native/acetate-launch.c) starts every conmon, from inside the
 * conmons' cgroup (conmon-cgroup.ts): each conmon is born there instead of being moved there.
 *
 * Why: a move into a cgroup waits in the kernel for an RCU grace period (cgroup_threadgroup_rwsem)
 * when no move happened just before (5-30 ms on the test node), and Node's spawn() of each conmon
 * blocked acetate's one thread for a few ms. The launcher is moved once, when it starts; its
 * children inherit the cgroup. Measured: a few % per start (runc's own moves of the container then
 * pay the grace period, as the bare `runc run` loop does: docs/supervision.md).
 *
 * Lifetime (util/answering-helper.ts): started at the first launch, ended when its stdin closes
 * (acetate exiting) or by stop(), which the runtime calls when a stop or removal leaves nothing
 * else in the conmons' cgroup, so that the cgroup can go. A launcher that ended or died is started
 * again at the next launch; every answer a launch waits for is given before the launcher ends.
 */
import path from 'node:path';
import { AnsweringHelper } from '../../util/answering-helper.js';
import { PACKAGE_ROOT } from '../../util/package-root.js';

/** dist/native/acetate-launch, built from native/acetate-launch.c by scripts/build-native.sh. */
export const LAUNCH_HELPER = path.join(PACKAGE_ROOT, 'dist', 'native', 'acetate-launch');

/** The first conmon process exits within milliseconds of its launch; a launcher silent this long is stuck. */
export const LAUNCH_TIMEOUT_MS = 30_000;

export interface LaunchRequest {
  /** Absolute path of the program (argv[0] too). */
  program: string;
  args: readonly string[];
  /** The program's whole environment. */
  env: Readonly<Record<string, string>>;
  /** Its stdout and stderr (created 0600, truncated). */
  out: string;
  /** Given to it as fd 3 (created 0600 when missing, not truncated). */
  fd3: string;
}

/** How the first process of a launch ended: its exit code, or the signal that ended it. */
export type LaunchEnd = { code: number } | { signal: number };

export class LauncherError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LauncherError';
  }
}

export class ConmonLauncher {
  private readonly helper: AnsweringHelper;

  /** `place` moves the new launcher where its children must be born (before any request is sent). */
  constructor(opts: { place: (pid: number) => Promise<void>; helper?: string }) {
    this.helper = new AnsweringHelper({
      program: opts.helper ?? LAUNCH_HELPER,
      name: 'the conmon launcher',
      error: (message, options) => new LauncherError(message, options),
      place: opts.place,
    });
  }

  /** The launcher's pid while one runs. */
  get pid(): number | undefined {
    return this.helper.pid;
  }

  /**
   * Starts `req.program` from the launcher; resolves when that first process ends. A launcher that
   * gives no answer within `timeoutMs` (stopped, or stuck) is killed: this launch and every other
   * one waiting on it fail, and the next launch starts a new launcher.
   */
  async launch(req: LaunchRequest, timeoutMs = LAUNCH_TIMEOUT_MS): Promise<LaunchEnd> {
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    const fields = [req.out, req.fd3, String(req.args.length + 1), req.program, ...req.args, String(env.length), ...env];
    const { word, detail } = await this.helper.request(fields, timeoutMs);
    if (word === 'exit') return { code: Number(detail) };
    if (word === 'signal') return { signal: Number(detail) };
    throw new LauncherError(`the conmon launcher could not start it: ${detail}`);
  }

  /**
   * Ends the launcher once it has answered what it was asked (what it started runs on). A launch
   * that begins meanwhile starts a new launcher: this one is forgotten first.
   */
  stop(): Promise<void> {
    return this.helper.stop();
  }
}
