/**
 * Reading the container log conmon writes in the Kubernetes CRI format:
 *   2024-01-01T00:00:00.000000000+00:00 stdout F message
 * `F` ends a line, `P` is a partial line continued by the next entry of the same stream.
 */
import { open } from 'node:fs/promises';

export interface LogLine {
  time: string;
  stream: string;
  message: string;
}

/** Parse CRI log text into whole lines (partial entries joined). */
export function parseCriLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  const partial = new Map<string, { time: string; parts: string[] }>();
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    const a = raw.indexOf(' ');
    const b = a < 0 ? -1 : raw.indexOf(' ', a + 1);
    if (a < 0 || b < 0) continue;
    const c = raw.indexOf(' ', b + 1);
    const time = raw.slice(0, a);
    const stream = raw.slice(a + 1, b);
    const tags = (c < 0 ? raw.slice(b + 1) : raw.slice(b + 1, c)).split(':');
    const message = c < 0 ? '' : raw.slice(c + 1);
    const pending = partial.get(stream);
    if (tags.includes('P')) {
      if (pending) pending.parts.push(message);
      else partial.set(stream, { time, parts: [message] });
      continue;
    }
    if (pending) {
      partial.delete(stream);
      out.push({ time: pending.time, stream, message: pending.parts.join('') + message });
    } else {
      out.push({ time, stream, message });
    }
  }
  for (const [stream, p] of partial) out.push({ time: p.time, stream, message: p.parts.join('') });
  return out;
}

/**
 * Read the end of a file holding at least `lines` newline-terminated lines (or the whole file),
 * without reading more of a large file than needed.
 */
export async function readTail(file: string, lines: number | undefined, chunkSize = 64 * 1024): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new Error(`cannot read log ${file}`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    if (lines === undefined) return (await fh.readFile()).toString('utf8');
    const chunks: Buffer[] = [];
    let pos = size;
    let newlines = 0;
    // +1 newline: the first (possibly cut) line is dropped; + margin for partial entries.
    while (pos > 0 && newlines <= lines * 2 + 1) {
      const len = Math.min(chunkSize, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, pos);
      chunks.unshift(buf);
      for (const byte of buf) if (byte === 10) newlines++;
    }
    let text = Buffer.concat(chunks).toString('utf8');
    if (pos > 0) text = text.slice(text.indexOf('\n') + 1);
    return text;
  } finally {
    await fh.close();
  }
}

export interface PickOptions {
  tail?: number;
  /** Only lines written at or after this time (epoch ms). */
  sinceMs?: number;
  /** Each line prefixed with its time, as `kubectl logs --timestamps`. */
  timestamps?: boolean;
}

/** Epoch ms of a CRI time (RFC 3339 with nanoseconds, cut to the millisecond Date understands). */
export function criTimeMs(time: string): number {
  return Date.parse(time.replace(/(\.\d{3})\d+/, '$1'));
}

/** The lines `since` and `tail` select, formatted (each followed by a newline). */
export function formatLines(lines: LogLine[], opts: PickOptions = {}): string {
  let picked = opts.sinceMs === undefined ? lines : lines.filter((l) => criTimeMs(l.time) >= opts.sinceMs!);
  if (opts.tail !== undefined) picked = opts.tail <= 0 ? [] : picked.slice(-opts.tail);
  return picked.map((l) => (opts.timestamps ? `${l.time} ${l.message}\n` : `${l.message}\n`)).join('');
}

/** The messages of a CRI log (last `tail` lines, those since `sinceMs`), each followed by a newline. */
export async function readLogMessages(file: string, opts: PickOptions = {}): Promise<string> {
  // With --since the tail counts lines after the cut, so the whole file is read.
  return formatLines(parseCriLog(await readTail(file, opts.sinceMs === undefined ? opts.tail : undefined)), opts);
}
