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
 * conmon is started by the runtime's launcher (conmon-launcher.ts), which sits in the conmons' cgroup
 * outside acetate's own (conmon-cgroup.ts): a stop or restart of the systemd unit running acetate
 * never reaches a conmon or a container.
 */
import { closeSync, openSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { readSmallFile, removePaths } from '../../util/small-file.js';
import { isAlive } from '../../util/processes.js';
import type { ConmonLauncher } from './conmon-launcher.js';

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
  /** Starts conmon from the conmons' cgroup (the runtime's, see conmon-launcher.ts). */
  launcher: Pick<ConmonLauncher, 'launch'>;
  /** conmon truncates the log when it grows beyond this (bytes). */
  logSizeMax?: number;
  timeoutMs?: number;
  /**
   * Between two looks at the sync file when no change notification came (ms). Default 100: the
   * sync file is watched (inotify), this is only the safety net and the conmon liveness check.
   */
  pollIntervalMs?: number;
}

export class ConmonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConmonError';
  }
}

export function conmonArgs(l: ConmonLaunch): string[] {
  const args = [
    '--cid',
    l.id,
    '--cuuid',
    l.cuuid,
    '--name',
    l.name,
    '--runtime',
    l.runcPath,
    '--bundle',
    l.bundle,
    '--container-pidfile',
    l.pidFile,
    '--conmon-pidfile',
    l.conmonPidFile,
    '--log-path',
    `k8s-file:${l.logFile}`,
    '--exit-dir',
    l.exitDir,
    '--socket-dir-path',
    l.socketDir,
    '--log-level',
    'error',
  ];
  if (l.logSizeMax !== undefined) args.push('--log-size-max', String(l.logSizeMax));
  for (const a of l.runtimeArgs) args.push('--runtime-arg', a);
  return args;
}

/** runc writes `--pid-file` through `.<name>` (O_EXCL): a `runc create` killed mid-way leaves it. */
export function runcPidTempOf(pidFile: string): string {
  return path.join(path.dirname(pidFile), `.${path.basename(pidFile)}`);
}

export interface SyncMessage {
  pid: number;
  message?: string;
}

/** conmon's report of `runc create` (first line of the sync file), undefined while there is none. */
export async function readSync(file: string): Promise<SyncMessage | undefined> {
  let text: string;
  try {
    text = (await readSmallFile(file)).trim();
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
    return (await readSmallFile(file)).trim();
  } catch {
    return '';
  }
}

async function readPid(file: string): Promise<number | undefined> {
  const n = Number(await readText(file));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Wakes a waiter when a file changes (inotify through fs.watch). Lost or unsupported notifications
 * only cost latency: the waiter also wakes after its poll interval.
 */
class ChangeSignal {
  private watcher?: FSWatcher;
  private changed = false;
  private wake?: () => void;

  constructor(file: string) {
    try {
      this.watcher = watch(file, { persistent: false }, () => this.fire());
      this.watcher.on('error', () => this.close());
    } catch {
      this.watcher = undefined; // no inotify here: polling alone
    }
  }

  private fire(): void {
    this.changed = true;
    this.wake?.();
  }

  /** Resolves at the next change (or at once if one came since the last call), or after `ms`. */
  async next(ms: number): Promise<void> {
    if (!this.changed) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.wake = undefined;
    }
    this.changed = false;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/**
 * Start conmon, which creates the container (runc state `created`); resolves with the container's
 * init pid once created. The container still has to be started (see RuncCli.start).
 */
export async function launchConmon(l: ConmonLaunch): Promise<{ pid: number; conmonPid?: number }> {
  const timeoutMs = l.timeoutMs ?? 60_000;
  const pollMs = l.pollIntervalMs ?? 100;
  await removePaths([l.syncFile, l.pidFile, runcPidTempOf(l.pidFile), l.conmonPidFile, l.conmonOut]);
  // Made empty here, before the watch below: the launcher's child opens it without truncating.
  closeSync(openSync(l.syncFile, 'w', 0o600));
  // Watch before conmon can write: its report wakes us at once instead of at the next poll.
  const syncChanged = new ChangeSignal(l.syncFile);
  try {
    // Born in the conmons' cgroup (conmon-launcher.ts); its stdout and stderr to conmonOut, the
    // sync file as fd 3. The first conmon process exits at once (after forking the monitor).
    const end = await l.launcher
      .launch({
        program: l.conmonPath,
        args: conmonArgs(l),
        env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
        out: l.conmonOut,
        fd3: l.syncFile,
      })
      .catch((err: unknown) => {
        throw new ConmonError(`cannot start conmon: ${(err as Error).message}`, { cause: err });
      });
    if (!('code' in end) || end.code !== 0) {
      const how = 'code' in end ? `exit ${end.code}` : `signal ${end.signal}`;
      throw new ConmonError(`conmon failed to start (${how}): ${await readText(l.conmonOut)}`);
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
      await syncChanged.next(pollMs);
    }
  } finally {
    syncChanged.close();
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
