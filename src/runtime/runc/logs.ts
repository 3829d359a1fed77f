/**
 * Reading the container log conmon writes in the Kubernetes CRI format:
 *   2024-01-01T00:00:00.000000000+00:00 stdout F message
 * `F` ends a line, `P` is a partial line continued by the next entry of the same stream.
 *
 * The container's bytes are passed through unchanged, as kubectl, docker and podman do: the log
 * is read and cut as Buffers, never decoded (a decode turns invalid UTF-8 into U+FFFD). conmon
 * splits what the container writes at each newline, so a message never holds one: an `F` entry
 * gives its message and the newline back, a `P` entry its message alone. Binary output therefore
 * comes back byte for byte, its 0x0a bytes included, and output that does not end with a newline
 * ends without one (`printf abc` prints `abc`).
 */
import { open } from 'node:fs/promises';

export interface LogLine {
  /** The time of the line's first part. */
  time: string;
  stream: string;
  message: Buffer;
  /** The line ended (an `F` entry): a newline follows its message. */
  ended: boolean;
}

export interface LogEntry {
  time: string;
  stream: string;
  /** `F`: the entry ends a line. */
  ends: boolean;
  message: Buffer;
}

const NL = 0x0a;
const SP = 0x20;

/** One CRI line (without its newline) as an entry; undefined when it is not one. */
function parseEntry(raw: Buffer): LogEntry | undefined {
  const a = raw.indexOf(SP);
  const b = a < 0 ? -1 : raw.indexOf(SP, a + 1);
  if (a < 0 || b < 0) return undefined;
  const c = raw.indexOf(SP, b + 1);
  const tags = raw.toString('latin1', b + 1, c < 0 ? raw.length : c).split(':');
  return {
    time: raw.toString('latin1', 0, a),
    stream: raw.toString('latin1', a + 1, b),
    ends: !tags.includes('P'),
    message: c < 0 ? Buffer.alloc(0) : raw.subarray(c + 1),
  };
}

/** The entries of CRI log bytes; `rest` is a last line still being written (no newline yet). */
export function parseCriEntries(bytes: Buffer): { entries: LogEntry[]; rest: Buffer } {
  const entries: LogEntry[] = [];
  let from = 0;
  for (;;) {
    const nl = bytes.indexOf(NL, from);
    if (nl < 0) break;
    const e = nl > from ? parseEntry(bytes.subarray(from, nl)) : undefined;
    if (e) entries.push(e);
    from = nl + 1;
  }
  return { entries, rest: bytes.subarray(from) };
}

/**
 * Entries joined into lines: the parts of a stream's partial line are joined to the entry that
 * ends it (stdout and stderr each stay whole when they interleave); a line still open at the end
 * is kept, not ended.
 */
export function joinLines(entries: LogEntry[]): LogLine[] {
  const out: LogLine[] = [];
  const partial = new Map<string, { time: string; parts: Buffer[] }>();
  for (const e of entries) {
    const pending = partial.get(e.stream);
    if (!e.ends) {
      if (pending) pending.parts.push(e.message);
      else partial.set(e.stream, { time: e.time, parts: [e.message] });
      continue;
    }
    if (pending) partial.delete(e.stream);
    out.push({ time: pending?.time ?? e.time, stream: e.stream, message: pending ? Buffer.concat([...pending.parts, e.message]) : e.message, ended: true });
  }
  for (const [stream, p] of partial) out.push({ time: p.time, stream, message: Buffer.concat(p.parts), ended: false });
  return out;
}

/** Parse CRI log bytes (or text) into lines. */
export function parseCriLog(bytes: Buffer | string): LogLine[] {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  // A last line without its newline is one conmon is writing: it is whole at the next read.
  return joinLines(parseCriEntries(buf).entries);
}

/**
 * Read the end of a file holding at least `lines` newline-terminated lines (or the whole file),
 * without reading more of a large file than needed.
 */
export async function readTail(file: string, lines: number | undefined, chunkSize = 64 * 1024): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw new Error(`cannot read log ${file}`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    if (lines === undefined) return await fh.readFile();
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
      for (const byte of buf) if (byte === NL) newlines++;
    }
    const bytes = Buffer.concat(chunks);
    return pos > 0 ? bytes.subarray(bytes.indexOf(NL) + 1) : bytes;
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

/** The lines `since` and `tail` select, as the container wrote them (an ended line with its newline). */
export function formatLines(lines: LogLine[], opts: PickOptions = {}): Buffer {
  let picked = opts.sinceMs === undefined ? lines : lines.filter((l) => criTimeMs(l.time) >= opts.sinceMs!);
  if (opts.tail !== undefined) picked = opts.tail <= 0 ? [] : picked.slice(-opts.tail);
  const parts: Buffer[] = [];
  for (const l of picked) {
    if (opts.timestamps) parts.push(Buffer.from(`${l.time} `, 'latin1'));
    parts.push(l.message);
    if (l.ended) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** The bytes of a CRI log's messages (last `tail` lines, those since `sinceMs`). */
export async function readLogMessages(file: string, opts: PickOptions = {}): Promise<Buffer> {
  // With --since the tail counts lines after the cut, so the whole file is read.
  return formatLines(parseCriLog(await readTail(file, opts.sinceMs === undefined ? opts.tail : undefined)), opts);
}
