/**
 * Opens each new file conmon renames over a container log, from a thread of its own.
 *
 * conmon replaces the log at each rotation and the replaced file's name is gone: a follower
 * that has not opened it by then loses it. Opening it from the main thread's watch callback is
 * not enough on a busy node: the main thread parses and writes output, and under load (a load
 * average of 29 on 2 cores in a test) its event loop ran 200-300 ms late, the time conmon took to
 * write several 1 MiB files. This thread does nothing but wait on inotify and open: a sleeping
 * thread that wakes is scheduled at once (the kernel's scheduler favours it), and the descriptor
 * it opens holds the file (unlinked or not) until the main thread has opened its own through
 * /proc/self/fd, however late that is. A worker_threads Worker (Node's own) rather than a native addon.
 */
import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import path from 'node:path';

export interface CaughtFile {
  fd: number;
  ino: number;
}

export interface LogGenerationCatcher {
  /**
   * Resolves once the directory is watched (true: every file renamed in from then on is caught,
   * in order), or false when it cannot be (no inotify: the caller polls).
   */
  ready: Promise<boolean>;
  stop(): Promise<void>;
}

// CommonJS, run by the worker (eval). On each rename in the log's directory: the log's name opened
// at once (a new file), or a rotation counted (conmon creates `<log>.tmp`, then renames it away).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { dir, base } = workerData;
const file = dir + '/' + base;
let watcher;
try {
  watcher = fs.watch(dir, { persistent: true }, (event, name) => {
    if (event !== 'rename') return;
    if (name === base + '.tmp') parentPort.postMessage({ tmp: true });
    else if (name === base) {
      let fd;
      try { fd = fs.openSync(file, 'r'); } catch { return; }
      parentPort.postMessage({ fd, ino: fs.fstatSync(fd).ino });
    }
  });
  watcher.on('error', () => parentPort.postMessage({ failed: true }));
} catch {
  parentPort.postMessage({ failed: true });
}
if (watcher) parentPort.postMessage({ ready: true });
// The main thread opened its own descriptor of the file (/proc/self/fd/N): this one can go.
parentPort.on('message', (m) => {
  if (typeof m === 'number') { try { fs.closeSync(m); } catch {} return; }
  watcher?.close();
  parentPort.close();
});
`;

/**
 * Starts the thread for `file`: onFile for each file renamed in (its descriptor, now the
 * caller's to close), onRotation for each rotation conmon began (counting the files that should
 * have come).
 */
export function catchLogGenerations(file: string, on: { onFile: (f: CaughtFile) => void; onRotation: () => void }): LogGenerationCatcher {
  const worker = new Worker(WORKER, { eval: true, workerData: { dir: path.dirname(file), base: path.basename(file) } });
  let stopped = false;
  let tmpEvents = 0;
  const ready = new Promise<boolean>((resolve) => {
    worker.on('message', (m: { ready?: boolean; failed?: boolean; tmp?: boolean; fd?: number; ino?: number }) => {
      if (m.failed) resolve(false);
      if (m.ready) resolve(true);
      if (m.tmp && ++tmpEvents % 2 === 0) on.onRotation(); // created, then renamed away
      if (m.fd !== undefined && m.ino !== undefined) {
        // The worker's descriptors are closed when it exits (Node closes a thread's files): the
        // main thread opens the same file through the worker's descriptor, then lets it go.
        let fd: number | undefined;
        try {
          fd = openSync(`/proc/self/fd/${m.fd}`, 'r');
        } catch {
          fd = undefined;
        }
        worker.postMessage(m.fd);
        if (fd !== undefined && !stopped) on.onFile({ fd, ino: m.ino });
        else if (fd !== undefined) closeSync(fd);
      }
    });
    worker.on('error', () => resolve(false));
    worker.on('exit', () => resolve(false));
  });
  return {
    ready,
    async stop() {
      if (stopped) return;
      stopped = true;
      worker.postMessage('stop'); // its own descriptors not handed over close with it
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        setTimeout(() => void worker.terminate().then(() => resolve()), 1000).unref();
      });
    },
  };
}
