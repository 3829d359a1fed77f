/**
 * `acetate logs -f`: prints a container's CRI log as conmon writes it, until the container is
 * removed (its record file goes) or the caller aborts. A restart of the process starts a new log
 * file (the old one becomes the previous log); the follow goes on in the new one.
 *
 * conmon 2.1.6 with --log-size-max rotates by replacing the file: when the next write would pass
 * the limit it closes the log, opens `<log>.tmp`, renames it over the log, and writes on; the
 * old file's name is gone. An open descriptor still reads it to its end, so the follower keeps
 * one on each file (each generation) and reads it to its end before going to the next: nothing
 * of a file it opened is lost, and a CRI line never spans two files.
 *
 * To open every generation before conmon replaces it again, a thread of its own watches the
 * log's directory (inotify) and opens each new file the moment it is renamed in (see
 * log-generation-catcher.ts): the main thread's own delays (parsing, writing, a busy node) cost
 * nothing. Should a whole generation still be written and replaced before that thread runs (a
 * tiny ACETATE_LOG_SIZE_MAX on a starved node), no one can read it any more: the follower counts
 * rotations (conmon creates `<log>.tmp` once per rotation) against the files it got and says
 * how many it missed, rather than skipping them silently. Without inotify the path is polled
 * (every 100 ms) instead.
 *
 * Output is the container's bytes (see logs.ts): an ended line with its newline, a partial line
 * (conmon's `P` entry: output with no newline yet, or the last output of a process) as soon as
 * it is read, without one.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { catchLogGenerations, type CaughtFile } from './log-generation-catcher.js';
import { formatLines, joinLines, parseCriEntries, criTimeMs, type LogEntry, type PickOptions } from './logs.js';

export interface FollowLogOptions extends PickOptions {
  file: string;
  /** The container's record: the follow ends once it is gone. */
  record: string;
  /** A promise returned: reading waits for it (the output's back-pressure); new files are still opened. */
  write: (bytes: Buffer) => void | Promise<void>;
  /** Told when rotated files were replaced before they could be read (their lines are lost). */
  onMissed?: (files: number) => void;
  signal?: AbortSignal;
  pollIntervalMs?: number;
}

interface Generation {
  fd: number;
  ino: number;
  offset: number;
}

// Read and parsed a piece at a time, the catcher's messages handled between pieces.
const CHUNK = 64 * 1024;

function inodeAt(p: string): number | undefined {
  try {
    return statSync(p).ino;
  } catch {
    return undefined;
  }
}

/** Follows the files that were `file`, in order. */
class Generations {
  /** Oldest first; the first is being read. */
  readonly queue: Generation[] = [];
  /** Rotations conmon made since the follow began (`.tmp` created). */
  rotations = 0;
  /** Files opened after the first one. */
  opened = 0;
  private started = false;

  constructor(private readonly file: string) {}

  /** Opens the file now at the path if it is one not seen yet. */
  capture(): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return; // not written yet, or between conmon's close and rename
    }
    this.adopt({ fd, ino: fstatSync(fd).ino });
  }

  /** A file opened (here or by the catcher thread): queued unless it is one already held. */
  adopt({ fd, ino }: CaughtFile): void {
    if (this.closed) {
      closeSync(fd);
      return;
    }
    // The same file as one held open (an open file keeps its inode number; a closed, deleted one's
    // number is soon given to a new file, so only the open ones say "seen").
    if (this.queue.some((g) => g.ino === ino)) {
      closeSync(fd);
      return;
    }
    if (this.started) this.opened++;
    this.started = true;
    this.queue.push({ fd, ino, offset: 0 });
  }

  /** The bytes of the current file from where reading stopped to its end (at most CHUNK). */
  read(): Buffer {
    const g = this.queue[0];
    if (!g) return Buffer.alloc(0);
    const buf = Buffer.allocUnsafe(CHUNK);
    const n = readSync(g.fd, buf, 0, CHUNK, g.offset);
    g.offset += n;
    return buf.subarray(0, n);
  }

  /**
   * Done with the current file when a newer one exists (conmon closed it before the rename) and
   * it is read to its end; a file truncated under us is read again from its start.
   */
  advance(): boolean {
    const g = this.queue[0];
    if (!g) return false;
    const size = fstatSync(g.fd).size;
    if (size < g.offset) g.offset = 0;
    if (this.queue.length < 2 || size > g.offset) return false;
    closeSync(g.fd);
    this.queue.shift();
    return true;
  }

  private closed = false;

  close(): void {
    this.closed = true;
    for (const g of this.queue) closeSync(g.fd);
    this.queue.length = 0;
  }
}

export async function followLog(o: FollowLogOptions): Promise<void> {
  const pollMs = o.pollIntervalMs ?? 100;
  const gens = new Generations(o.file);
  let wake: (() => void) | undefined;
  // What is there when the follow is asked for, at once (the catcher thread takes a moment to start).
  gens.capture();
  const catcher = catchLogGenerations(o.file, {
    onFile: (f) => {
      gens.adopt(f);
      wake?.();
    },
    onRotation: () => {
      gens.rotations++;
      wake?.();
    },
  });
  // Once the catcher watches, it alone brings new files, in the order conmon made them: a file
  // opened here as well could come back from it after it was read and closed, and be read twice.
  const caught = await catcher.ready;
  gens.capture(); // a file made while the catcher started (one already held is not taken twice)
  let rest = Buffer.alloc(0);
  let first = true;
  let missedTold = 0;
  /** Streams with a line begun but not ended (for where --timestamps puts a time). */
  const open = new Set<string>();
  const emit = async (entries: LogEntry[]) => {
    if (first) {
      // tail applies to what is there when the follow starts; since to every line.
      const lines = joinLines(entries);
      for (const l of lines) if (!l.ended) open.add(l.stream);
      const out = formatLines(lines, o);
      if (out.length) await o.write(out);
      return;
    }
    const parts: Buffer[] = [];
    for (const e of entries) {
      if (o.sinceMs !== undefined && criTimeMs(e.time) < o.sinceMs) continue;
      if (o.timestamps && !open.has(e.stream)) parts.push(Buffer.from(`${e.time} `, 'latin1'));
      parts.push(e.message);
      if (e.ends) {
        parts.push(Buffer.from('\n'));
        open.delete(e.stream);
      } else open.add(e.stream);
    }
    if (parts.length) await o.write(Buffer.concat(parts));
  };
  const drain = async () => {
    if (first) {
      // What is there when the follow starts, whole: --tail counts its lines.
      const chunks: Buffer[] = [];
      for (let c = gens.read(); c.length; c = gens.read()) chunks.push(c);
      const parsed = parseCriEntries(Buffer.concat(chunks));
      rest = Buffer.from(parsed.rest);
      await emit(parsed.entries);
      first = false;
    }
    for (;;) {
      const chunk = gens.read();
      if (chunk.length) {
        const parsed = parseCriEntries(rest.length ? Buffer.concat([rest, chunk]) : chunk);
        rest = Buffer.from(parsed.rest);
        await emit(parsed.entries);
        // Let the catcher's files in between chunks (they are held already; this only queues them).
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      if (!gens.advance()) return;
    }
  };
  try {
    for (;;) {
      if (o.signal?.aborted) return;
      const gone = inodeAt(o.record) === undefined;
      if (!caught) gens.capture(); // no inotify: polling alone
      await drain();
      const missed = gens.rotations - gens.opened;
      if (missed > missedTold && inodeAt(o.file) === gens.queue[gens.queue.length - 1]?.ino) {
        o.onMissed?.(missed - missedTold);
        missedTold = missed;
      }
      if (gone) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, pollMs);
        wake = done;
        o.signal?.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    await catcher.stop();
    gens.close();
  }
}

export { criTimeMs };
