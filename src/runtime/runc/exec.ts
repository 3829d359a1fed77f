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
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { existsNow, removePaths } from '../../util/small-file.js';
import type { ExecRequest, ExecResult } from '../runtime.js';
import { relayExecStderr } from './exec-start-error.js';

/** What Kubernetes keeps of a probe's output. */
export const MAX_CAPTURE_BYTES = 10 * 1024;

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

export function runcExec(o: RuncExecOptions, req: ExecRequest): Promise<ExecResult> {
  const pidFile = path.join(o.pidDir, `exec-${randomBytes(6).toString('hex')}.pid`);
  const capture = req.stdio === 'capture';
  const child = spawn(o.runcPath, runcExecArgs(o, req, pidFile), {
    // stderr through a relay: runc's own error line of a command that cannot start becomes exit 127/126 and one line (exec-start-error.ts).
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : [req.interactive || req.tty ? 'inherit' : 'ignore', 'inherit', 'pipe'],
  });
  const relay = capture ? undefined : relayExecStderr(child.stderr!, process.stderr, o.key ?? o.id);
  const chunks: Buffer[] = [];
  let size = 0;
  const keep = (d: Buffer) => {
    if (size >= MAX_CAPTURE_BYTES) return;
    chunks.push(d.subarray(0, MAX_CAPTURE_BYTES - size));
    size += Math.min(d.length, MAX_CAPTURE_BYTES - size);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  if (req.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      void killExecProcess(pidFile).finally(() => {
        // runc exits once its process is gone; if it is stuck itself, it goes too.
        setTimeout(() => child.kill('SIGKILL'), 1000).unref();
      });
    }, req.timeoutMs);
  }
  return new Promise<ExecResult>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${o.runcPath} exec`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const started = existsNow(pidFile);
      void removePaths([pidFile]).catch(() => undefined);
      const r: ExecResult = { exitCode: code ?? 128 + signalNumber(signal) };
      if (capture) r.output = Buffer.concat(chunks).toString('utf8');
      if (timedOut) r.timedOut = true;
      const failure = relay?.finish(r.exitCode, started);
      if (failure) Object.assign(r, { exitCode: failure.exitCode, startError: failure.message });
      resolve(r);
    });
  });
}

async function killExecProcess(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
