/**
 * Runs conmon's first process from a thread of its own, so that the main thread is never blocked
 * while it forks.
 *
 * Node's spawn() returns only once the child has exec'd (libuv waits on a pipe for the exec or its
 * error), and a new child runs after every task already waiting for a CPU (the kernel's fork
 * penalty): on a loaded 2-core node that is 50-110 ms per spawn, measured as the main thread's own
 * time in a CPU profile of `acetate apply` (2.1 s of 5 s for 20 creates, issue 25). At
 * `--concurrency 8` every other create waited that long behind each conmon spawn, so creates
 * went one at a time through spawn(). Here each launch has a worker_threads Worker (Node's own; a
 * few are kept while creates follow each other) that spawns conmon, moves it into its cgroups
 * through the start pipe (conmon-cgroup.ts) and reports its exit code; the main thread goes on
 * meanwhile.
 *
 * The file descriptors given as conmon's stdio are the process's (opened by the caller, which
 * closes them after the result came): a thread uses them by number.
 */
import { Worker } from 'node:worker_threads';

export interface FirstConmon {
  path: string;
  args: string[];
  env: Record<string, string>;
  /** conmon's stdout and stderr (fd). */
  out: number;
  /** $_OCI_SYNCPIPE, fd 3 in conmon (fd). */
  sync: number;
  /** Cgroup dirs conmon is moved into (through its start pipe, fd 4) before it forks anything. */
  cgroupDirs: readonly string[];
}

/** What the first conmon process did: its exit code (null: it could not be spawned), or why it was killed. */
export interface FirstConmonResult {
  code: number | null;
  /** conmon could not be moved into its cgroups and was killed before it created anything. */
  moveError?: string;
}

// CommonJS, run by each worker (eval): one launch per message, the result posted back.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
parentPort.on('message', (l) => {
  const move = l.cgroupDirs.length > 0;
  let child;
  try {
    child = spawn(l.path, l.args, { cwd: '/', detached: true, stdio: ['ignore', l.out, l.out, l.sync, move ? 'pipe' : 'ignore'], env: l.env });
  } catch (err) {
    parentPort.postMessage({ code: null });
    return;
  }
  let moveError;
  child.once('error', () => parentPort.postMessage({ code: null, moveError }));
  child.once('exit', (code) => parentPort.postMessage({ code, moveError }));
  if (!move) return;
  const pipe = child.stdio[4];
  try {
    if (child.pid === undefined || !pipe) throw new Error('conmon did not start');
    for (const dir of l.cgroupDirs) {
      try {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'cgroup.procs'), child.pid + '\\n');
      } catch (err) {
        throw new Error('cannot move process ' + child.pid + ' into cgroup ' + dir + ': ' + err.message);
      }
    }
  } catch (err) {
    moveError = err.message;
    child.kill('SIGKILL');
    if (pipe) pipe.destroy();
    return;
  }
  pipe.on('error', () => {}); // conmon gone already: its exit code tells
  pipe.end('go');
});
`;

/** Idle workers kept for the next launches, and how long one may stay idle. */
const KEEP_IDLE = 8;
const IDLE_MS = 5_000;

interface Idle {
  worker: Worker;
  timer: NodeJS.Timeout;
}
const idle: Idle[] = [];

function takeWorker(): Worker {
  const kept = idle.pop();
  if (kept) {
    clearTimeout(kept.timer);
    kept.worker.ref();
    return kept.worker;
  }
  return new Worker(WORKER, { eval: true });
}

function giveBack(worker: Worker): void {
  worker.removeAllListeners('message');
  worker.removeAllListeners('error');
  worker.removeAllListeners('exit');
  if (idle.length >= KEEP_IDLE) {
    void worker.terminate();
    return;
  }
  // Unref'd: an idle worker never keeps acetate running.
  worker.unref();
  const entry: Idle = {
    worker,
    timer: setTimeout(() => {
      idle.splice(idle.indexOf(entry), 1);
      void worker.terminate();
    }, IDLE_MS).unref(),
  };
  idle.push(entry);
}

/** Spawns conmon's first process from a worker; resolves when it exited (it forks the monitor and exits at once). */
export function runFirstConmon(l: FirstConmon): Promise<FirstConmonResult> {
  const worker = takeWorker();
  return new Promise<FirstConmonResult>((resolve, reject) => {
    worker.once('message', (m: FirstConmonResult) => {
      giveBack(worker);
      resolve(m);
    });
    worker.once('error', (err) => {
      void worker.terminate();
      reject(new Error(`conmon's launch thread failed: ${err.message}`, { cause: err }));
    });
    worker.once('exit', (code) => reject(new Error(`conmon's launch thread exited (${code}) before conmon did`)));
    worker.postMessage({ path: l.path, args: l.args, env: l.env, out: l.out, sync: l.sync, cgroupDirs: [...l.cgroupDirs] });
  });
}
