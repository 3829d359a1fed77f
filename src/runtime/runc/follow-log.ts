/**
 * `acetate logs -f`: prints a container's CRI log as conmon writes it, until the container is
 * removed (its record file goes) or the caller aborts. Restarts of the process keep the follow
 * going (conmon appends to the same file).
 *
 * conmon 2.1.6 with --log-size-max rotates by replacing the file: when the next write would pass
 * the limit it opens `<log>.tmp`, renames it over the log, and writes on; what was written
 * before is gone. So the follower polls the path's inode and size: a new inode (or a shorter
 * file) means the old file was replaced, and reading starts again at the new file's beginning
 * after draining the old one. Polling (every 100 ms by default) rather than inotify: a rename over
 * the watched file ends an inotify watch on it, and one stat per poll is nothing for one CLI
 * process.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { criTimeMs, formatLines, parseCriLog, type PickOptions } from './logs.js';

export interface FollowLogOptions extends PickOptions {
  file: string;
  /** The container's record: the follow ends once it is gone. */
  record: string;
  write: (text: string) => void;
  signal?: AbortSignal;
  pollIntervalMs?: number;
}

interface Open {
  fh: FileHandle;
  ino: number;
  offset: number;
}

async function inodeOf(p: string): Promise<{ ino: number; size: number } | undefined> {
  try {
    const s = await stat(p);
    return { ino: s.ino, size: s.size };
  } catch {
    return undefined;
  }
}

async function openLog(file: string): Promise<Open | undefined> {
  try {
    const fh = await open(file, 'r');
    return { fh, ino: (await fh.stat()).ino, offset: 0 };
  } catch {
    return undefined; // not written yet
  }
}

/** The bytes from `o.offset` to the end. */
async function readMore(o: Open): Promise<Buffer> {
  const { size } = await o.fh.stat();
  if (size <= o.offset) return Buffer.alloc(0);
  const buf = Buffer.alloc(size - o.offset);
  const { bytesRead } = await o.fh.read(buf, 0, buf.length, o.offset);
  o.offset += bytesRead;
  return buf.subarray(0, bytesRead);
}

export async function followLog(o: FollowLogOptions): Promise<void> {
  const pollMs = o.pollIntervalMs ?? 100;
  let pending = '';
  let first = true;
  /** Whole CRI lines in, formatted lines out; a partial (P) entry waits for the line that ends it. */
  const emit = (text: string) => {
    pending += text;
    const cut = pending.lastIndexOf('\n');
    if (cut < 0) return;
    let rawLines = pending
      .slice(0, cut + 1)
      .split('\n')
      .filter(Boolean);
    pending = pending.slice(cut + 1);
    // Hold back trailing partial entries (tag P) until their final part arrives.
    let end = rawLines.length;
    while (end > 0 && / (?:stdout|stderr) P(?::\S*)? /.test(rawLines[end - 1]!)) end--;
    pending =
      rawLines
        .slice(end)
        .map((l) => `${l}\n`)
        .join('') + pending;
    rawLines = rawLines.slice(0, end);
    if (!rawLines.length) return;
    const lines = parseCriLog(rawLines.join('\n'));
    // tail applies to what is there when the follow starts; since to every line.
    const out = formatLines(lines, { ...(first ? { tail: o.tail } : {}), sinceMs: o.sinceMs, timestamps: o.timestamps });
    first = false;
    if (out) o.write(out);
  };
  let cur = await openLog(o.file);
  try {
    if (cur) emit((await readMore(cur)).toString('utf8'));
    first = false;
    for (;;) {
      if (o.signal?.aborted) return;
      const gone = (await inodeOf(o.record)) === undefined;
      if (!cur) cur = await openLog(o.file);
      if (cur) {
        emit((await readMore(cur)).toString('utf8'));
        const now = await inodeOf(o.file);
        if (now && (now.ino !== cur.ino || now.size < cur.offset)) {
          // Replaced (rotated) or truncated: what the old file still had was read above.
          await cur.fh.close();
          cur = await openLog(o.file);
          pending = '';
          if (cur) emit((await readMore(cur)).toString('utf8'));
        }
      }
      if (gone) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, pollMs);
        o.signal?.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    await cur?.fh.close();
  }
}

export { criTimeMs };
