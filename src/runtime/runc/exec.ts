/**
 * `runc exec` into a running container: the process joins the container's namespaces and cgroup
 * and gets its config's environment. For a user (`acetate exec`) the stdio is inherited, with
 * `--tty` runc makes a pseudo-terminal and relays it to ours (it needs our stdin to be a terminal:
 * no console socket is involved). For probes the output is captured and a timeout kills the
 * process: runc writes its host pid to a pid file, and SIGKILL to that pid ends it however it
 * hangs (a signal to `runc exec` itself would leave the process running in the container).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { existsNow, removePaths } from '../../util/small-file.js';
import type { ExecRequest, ExecResult } from '../runtime.js';
import { relayExecStderr } from './exec-start-error.js';
import { killExecProcess, reapLeftChildren } from './exec-process.js';

/** What Kubernetes keeps of a probe's output. */
export const MAX_CAPTURE_BYTES = 10 * 1024;
/**
 * What a capture reads at most. Beyond what is kept, output is read and dropped up to this bound,
 * so that a command printing more than it should (`curl` of a 50 KB health page) still exits
 * with its own code, as under Kubernetes; then the pipes are closed and a command still writing
 * gets SIGPIPE (runc passes it on): a probe printing 100 MB costs acetate the reading of 1 MiB (~1 ms of CPU,
 * a tenth of what starting `runc exec` costs), not of 100 MB.
 */
export const MAX_READ_BYTES = 1024 * 1024;
/**
 * Once runc exited, how long output still on its way is read: runc exits once it copied the
 * process's output to us, so our ends close at once; this only bounds the wait should anything
 * else hold them (a capture never waits on a pipe for longer).
 */
const DRAIN_AFTER_EXIT_MS = 100;
/** A capture still running after this long has its process watched (exec-process.ts), then at doubling intervals up to the max. */
const WATCH_FIRST_MS = 100;
const WATCH_MAX_MS = 1000;

export interface RuncExecOptions {
  runcPath: string;
  /** runc's global args (--root). */
  runtimeArgs: string[];
  id: string;
  /** A directory for the exec's pid file (the container's run dir). */
  pidDir: string;
  /** namespace/name, for the message of a command that cannot start. */
  key?: string;
}

export function runcExecArgs(o: RuncExecOptions, req: ExecRequest, pidFile: string): string[] {
  return [...o.runtimeArgs, 'exec', ...(req.tty ? ['--tty'] : []), '--pid-file', pidFile, o.id, ...req.command];
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (os.constants.signals[signal] ?? 0) : 0;
}

/**
 * Runs the exec. A capture ends when the process exits: runc exits with its code once the
 * output pipes are closed, and children the process left in its process group holding them are
 * killed once it is gone (exec-process.ts). Its other children (a daemon that left the group and
 * closed its output) run on, as the kubelet leaves them: the container's, reaped by its init,
 * killed with it.
 */
export function runcExec(o: RuncExecOptions, req: ExecRequest): Promise<ExecResult> {
  const pidFile = path.join(o.pidDir, `exec-${randomBytes(6).toString('hex')}.pid`);
  const capture = req.stdio === 'capture';
  const child = spawn(o.runcPath, runcExecArgs(o, req, pidFile), {
    // stderr through a relay: runc's own error line of a command that cannot start becomes exit 127/126 and one line (exec-start-error.ts).
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : [req.interactive || req.tty ? 'inherit' : 'ignore', 'inherit', 'pipe'],
  });
  const relay = capture ? undefined : relayExecStderr(child.stderr!, process.stderr, o.key ?? o.id, req.command[0]);
  const chunks: Buffer[] = [];
  let kept = 0;
  let read = 0;
  let cut = false;
  const stopReading = (): void => {
    child.stdout?.destroy();
    child.stderr?.destroy();
  };
  const keep = (d: Buffer): void => {
    read += d.length;
    if (kept < MAX_CAPTURE_BYTES) {
      const part = Buffer.from(d.subarray(0, MAX_CAPTURE_BYTES - kept)); // a copy: the 64 KiB chunk is not kept alive
      chunks.push(part);
      kept += part.length;
    }
    if (read >= MAX_READ_BYTES && !cut) {
      cut = true;
      stopReading();
    }
  };
  if (capture) {
    // Only a capture is kept and bounded; in inherit mode stderr is the relay's (and must not be cut).
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }
  // Destroyed pipes may report EPIPE-like errors; the result says what was read.
  child.stdout?.on('error', () => undefined);
  child.stderr?.on('error', () => undefined);
  let exited = false;
  let timedOut = false;
  let aborted = false;
  let killing = false;
  const kill = (): void => {
    if (killing) return;
    killing = true;
    void killExecProcess(pidFile, () => exited).finally(() => {
      // runc exits once its process is gone; if it is stuck itself (or never wrote the pid file), it goes too.
      setTimeout(() => child.kill('SIGKILL'), 1000).unref();
    });
  };
  let timer: NodeJS.Timeout | undefined;
  if (req.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, req.timeoutMs);
  }
  const onAbort = (): void => {
    aborted = true;
    kill();
  };
  if (req.signal?.aborted) onAbort();
  else req.signal?.addEventListener('abort', onAbort, { once: true });
  const stopWatching = capture ? reapLeftChildren(pidFile, () => exited, { firstMs: WATCH_FIRST_MS, maxMs: WATCH_MAX_MS }) : () => undefined;
  return new Promise<ExecResult>((resolve, reject) => {
    let finished = false;
    let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let drain: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      finished = true;
      stopWatching();
      clearTimeout(timer);
      clearTimeout(drain);
      req.signal?.removeEventListener('abort', onAbort);
      void removePaths([pidFile]).catch(() => undefined);
    };
    const finish = (): void => {
      if (finished || !status) return;
      const started = existsNow(pidFile); // runc wrote the command's pid: it started (read before cleanup removes it)
      cleanup();
      stopReading();
      const r: ExecResult = { exitCode: status.code ?? 128 + signalNumber(status.signal) };
      if (capture) r.output = Buffer.concat(chunks).toString('utf8');
      if (cut) r.outputCut = read;
      if (timedOut) r.timedOut = true;
      if (aborted) r.aborted = true;
      const failure = relay?.finish(r.exitCode, started);
      if (failure) Object.assign(r, { exitCode: failure.exitCode, startError: failure.message });
      resolve(r);
    };
    child.once('error', (err) => {
      if (finished) return;
      cleanup();
      reject(new Error(`cannot run ${o.runcPath} exec`, { cause: err }));
    });
    child.once('exit', (code, signal) => {
      exited = true;
      stopWatching();
      status = { code, signal };
      if (capture) drain = setTimeout(finish, DRAIN_AFTER_EXIT_MS);
    });
    child.once('close', finish); // the pipes closed too (at once, unless a child holds them)
  });
}
