/**
 * Supervision by conmon: conmon runs `runc create` for us, then stays as the parent of the
 * container's init, writes its stdout/stderr to a Kubernetes-format log file and its exit code to
 * the exit dir. conmon double-forks and calls setsid, so container and conmon outlive acetate.
 *
 * conmon reports the result of `runc create` on the fd named by $_OCI_SYNCPIPE as one JSON object:
 * {"pid": N} or {"pid": -1, "message": "..."}. We give it a regular file instead of a pipe: conmon
 * keeps that fd open for its whole life, and a pipe whose reader (acetate) went away could not be
 * written safely. conmon's own stdio goes to a file too, so it never holds acetate's stdio open.
 *
 * conmon stays in acetate's own cgroups (the containers have theirs). Under systemd, the unit
 * running acetate needs KillMode=process, or a restart of the unit kills every conmon (the
 * containers would survive, but lose their log and exit-code supervisor).
 */
import { spawn } from 'node:child_process';
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from './procfs.js';

export interface ConmonLaunch {
  conmonPath: string;
  runcPath: string;
  /** Global runc args, e.g. ['--root', dir]. */
  runtimeArgs: string[];
  id: string;
  cuuid: string;
  name: string;
  bundle: string;
  pidFile: string;
  conmonPidFile: string;
  logFile: string;
  exitDir: string;
  socketDir: string;
  syncFile: string;
  conmonOut: string;
  /** conmon truncates the log when it grows beyond this (bytes). */
  logSizeMax?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export class ConmonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConmonError';
  }
}

export function conmonArgs(l: ConmonLaunch): string[] {
  const args = [
    '--cid', l.id,
    '--cuuid', l.cuuid,
    '--name', l.name,
    '--runtime', l.runcPath,
    '--bundle', l.bundle,
    '--container-pidfile', l.pidFile,
    '--conmon-pidfile', l.conmonPidFile,
    '--log-path', `k8s-file:${l.logFile}`,
    '--exit-dir', l.exitDir,
    '--socket-dir-path', l.socketDir,
    '--log-level', 'error',
  ];
  if (l.logSizeMax !== undefined) args.push('--log-size-max', String(l.logSizeMax));
  for (const a of l.runtimeArgs) args.push('--runtime-arg', a);
  return args;
}

export interface SyncMessage {
  pid: number;
  message?: string;
}

/** conmon's report of `runc create` (first line of the sync file), undefined while there is none. */
export async function readSync(file: string): Promise<SyncMessage | undefined> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
  if (!text) return undefined;
  try {
    const first = text.split('\n')[0] ?? '';
    const parsed = JSON.parse(first) as { pid?: number; data?: number; message?: string };
    const pid = parsed.pid ?? parsed.data;
    return typeof pid === 'number' ? { pid, message: parsed.message } : undefined;
  } catch {
    return undefined; // still being written
  }
}

async function readText(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return '';
  }
}

async function readPid(file: string): Promise<number | undefined> {
  const n = Number(await readText(file));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Start conmon, which creates the container (runc state `created`); resolves with the container's
 * init pid once created. The container still has to be started with `runc start`.
 */
export async function launchConmon(l: ConmonLaunch): Promise<{ pid: number; conmonPid?: number }> {
  const sleep = l.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeoutMs = l.timeoutMs ?? 60_000;
  // runc writes the pid file through `.<name>` (O_EXCL): a `runc create` killed mid-way leaves it.
  const runcPidTmp = path.join(path.dirname(l.pidFile), `.${path.basename(l.pidFile)}`);
  await Promise.all([l.syncFile, l.pidFile, runcPidTmp, l.conmonPidFile].map((f) => rm(f, { force: true })));
  const sync = await open(l.syncFile, 'w', 0o600);
  const out = await open(l.conmonOut, 'w', 0o600);
  let exited: Promise<number | null>;
  try {
    const child = spawn(l.conmonPath, conmonArgs(l), {
      cwd: '/',
      detached: true,
      stdio: ['ignore', out.fd, out.fd, sync.fd],
      env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
    });
    // Not unref()'d: this first conmon process exits at once, and awaiting its exit must keep
    // node's event loop alive.
    exited = new Promise((resolve) => {
      child.once('error', () => resolve(null));
      child.once('exit', (code) => resolve(code));
    });
  } finally {
    await sync.close();
    await out.close();
  }
  // The first conmon process exits at once (after forking the monitor); a non-zero code is an error.
  const firstExit = await exited;
  if (firstExit !== 0) {
    throw new ConmonError(`conmon failed to start (exit ${firstExit ?? 'error'}): ${await readText(l.conmonOut)}`);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = await readSync(l.syncFile);
    if (msg) {
      if (msg.pid > 0) return { pid: msg.pid, conmonPid: await readPid(l.conmonPidFile) };
      throw new ConmonError(`could not create the container: ${(msg.message ?? 'unknown error').trim()}`);
    }
    const conmonPid = await readPid(l.conmonPidFile);
    if (conmonPid !== undefined && !(await isAlive(conmonPid))) {
      // One last look: conmon may have written the message just before exiting.
      const last = await readSync(l.syncFile);
      if (last && last.pid > 0) return { pid: last.pid, conmonPid };
      const detail = last?.message ?? (await readText(l.conmonOut));
      throw new ConmonError(`conmon exited before the container was created${detail ? `: ${detail.trim()}` : ''}`);
    }
    if (Date.now() > deadline) throw new ConmonError(`timed out after ${timeoutMs} ms waiting for conmon to create the container`);
    await sleep(20);
  }
}

/** The exit code conmon recorded for the last run, if any. */
export async function readExitCode(exitFile: string): Promise<number | undefined> {
  const text = await readText(exitFile);
  if (text === '') return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

export { readPid };
