/**
 * Thin wrapper around the runc binary, always with acetate's own `--root`. Only what acetate
 * needs; `runc create` itself is run by conmon (see conmon.ts).
 */
import { exec, ExecError } from '../../util/exec.js';
import { startThroughExecFifo } from './exec-fifo.js';
import { readRuncStateFile, readRuncStateFiles, UnreadableStateError } from './runc-state-file.js';
import type { RuncState } from './runc-state.js';

export class RuncError extends Error {
  /** runc's own message (its `msg="..."`), without the log prefix. */
  readonly runcMessage: string;
  constructor(message: string, runcMessage: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RuncError';
    this.runcMessage = runcMessage;
  }
}

/** Extract the messages of runc's logfmt lines (`time=... level=error msg="..."`), else the raw text. */
export function runcMessageOf(stderr: string): string {
  const msgs: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (m) {
      try {
        msgs.push(JSON.parse(`"${m[1]}"`) as string);
      } catch {
        msgs.push(m[1]!);
      }
    } else if (line.trim()) msgs.push(line.trim());
  }
  return msgs.join('; ');
}

const NOT_EXIST = /container does not exist|container .* does not exist|no such file or directory/i;

export interface RuncCliOptions {
  /** Path of the runc binary. */
  binary: string;
  /** acetate's runc state root. */
  root: string;
  timeoutMs?: number;
}

export class RuncCli {
  readonly binary: string;
  readonly root: string;
  private readonly timeoutMs: number;

  constructor(opts: RuncCliOptions) {
    this.binary = opts.binary;
    this.root = opts.root;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Global arguments for runc (also handed to conmon as --runtime-arg). */
  globalArgs(): string[] {
    return ['--root', this.root];
  }

  private async run(args: string[], what: string): Promise<string> {
    try {
      const r = await exec(this.binary, [...this.globalArgs(), ...args], { timeoutMs: this.timeoutMs });
      return r.stdout;
    } catch (err) {
      const stderr = err instanceof ExecError ? err.stderr : '';
      const msg = runcMessageOf(stderr) || (err instanceof Error ? err.message : String(err));
      throw new RuncError(`runc ${what} failed: ${msg}`, msg, { cause: err });
    }
  }

  /** All containers in the root: one runc process, whatever their number. */
  async list(): Promise<RuncState[]> {
    try {
      return await readRuncStateFiles(this.root);
    } catch (err) {
      if (!(err instanceof UnreadableStateError)) throw err;
    }
    const out = await this.run(['list', '--format', 'json'], 'list');
    const parsed = JSON.parse(out.trim() || 'null') as RuncState[] | null;
    return parsed ?? [];
  }

  /** State of one container, undefined if runc does not know it. Read from runc's state file when possible. */
  async state(id: string): Promise<RuncState | undefined> {
    try {
      return await readRuncStateFile(this.root, id);
    } catch (err) {
      if (!(err instanceof UnreadableStateError)) throw err;
    }
    return this.stateFromRunc(id);
  }

  /** `runc state ID` itself. */
  async stateFromRunc(id: string): Promise<RuncState | undefined> {
    try {
      return JSON.parse(await this.run(['state', id], `state ${id}`)) as RuncState;
    } catch (err) {
      if (err instanceof RuncError && NOT_EXIST.test(err.runcMessage)) return undefined;
      throw err;
    }
  }

  /**
   * Start a created container. With its init pid, through runc's exec fifo as `runc start` does it
   * (see exec-fifo.ts), else, or when the fifo is not as expected, with `runc start`.
   */
  async start(id: string, opts: { initPid?: number } = {}): Promise<void> {
    if (opts.initPid !== undefined && (await startThroughExecFifo({ root: this.root, id, initPid: opts.initPid, timeoutMs: this.timeoutMs }))) return;
    await this.run(['start', id], `start ${id}`);
  }

  /** Send a signal to the container's init (all its processes with `all`). */
  async kill(id: string, signal: string, opts: { all?: boolean } = {}): Promise<void> {
    await this.run(['kill', ...(opts.all ? ['--all'] : []), id, signal], `kill ${id} ${signal}`);
  }

  /** Delete the container's runc state (and cgroups). Idempotent: an unknown id is not an error. */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.run(['delete', ...(opts.force ? ['--force'] : []), id], `delete ${id}`);
    } catch (err) {
      if (err instanceof RuncError && NOT_EXIST.test(err.runcMessage)) return;
      throw err;
    }
  }

  /** `runc pause`: the container's processes frozen (cgroup freezer). Idempotent: a paused container stays paused. */
  async pause(id: string): Promise<void> {
    try {
      await this.run(['pause', id], `pause ${id}`);
    } catch (err) {
      // runc says "not running" of a paused one (its state file alone does not tell: runc-state-file.ts).
      if (err instanceof RuncError && /not running/i.test(err.runcMessage) && (await this.stateFromRunc(id))?.status === 'paused') return;
      throw err;
    }
  }

  /** `runc resume` (idempotent: a container that is not paused, or gone, is left as it is). */
  async resume(id: string): Promise<void> {
    try {
      await this.run(['resume', id], `resume ${id}`);
    } catch (err) {
      if (err instanceof RuncError && (NOT_EXIST.test(err.runcMessage) || /not paused/i.test(err.runcMessage))) return;
      throw err;
    }
  }

  /** `runc update` with the given flags (see resources.ts). */
  async update(id: string, flags: string[]): Promise<void> {
    await this.run(['update', ...flags, id], `update ${id}`);
  }
}
