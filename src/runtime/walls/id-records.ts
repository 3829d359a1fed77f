/**
 * The node's record of which id ranges are held, and by whom: one file for every acetate instance
 * on the node (the pool, --userns-pool, is the node's, so must the record of its use be: two
 * instances with their own state dirs each read only their own containers' ids.json and handed
 * out the same ranges). Default /var/lib/acetate/node-id-ranges.json; ACETATE_ID_RECORDS names
 * another (tests give each instance its own, or two instances one).
 *
 *   { "version": 1, "records": [ { "owner": { "stateDir": "/var/lib/acetate", "container": "default_web" },
 *                                  "ranges": [ { "hostID": 1000065536, "size": 65536 } ] } ] }
 *
 * A record names its owner, the instance's state dir and the container's dir name in it; the
 * ranges are what the container holds (the range it runs with, and the owner of its private
 * area's files while they are not re-owned yet). The container's own ids.json stays its record
 * of those (id-ranges.ts); this file is what the other instances see. A record whose owner's
 * container dir no longer exists (destroyed, state dir removed, a test that crashed) is dropped
 * when an allocation finds it so (id-ranges.ts), so ranges come back without anyone's help.
 * Changes since the file was last written whole are lines of its journal, <file>.log (below),
 * read with it. Written only under the flock of <file>.lock (id-ranges.ts, id-lock.ts). Every
 * allocation follows it, so it (and its journal) is read only when it and its dir are root's and
 * writable by root only, it is a plain file (not a symlink), and at most 16 MiB: anything else is
 * an IdPoolError naming the file and why (a record planted by someone else could cover the whole
 * pool or drop another's ranges).
 */
import { appendFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomicSync } from '../../util/small-file.js';
import { IdPoolError, type IdRange } from './id-pool.js';
import { readTrustedFileSync, refuseUntrustedDirSync } from '../../util/trusted-file.js';

export const DEFAULT_ID_RECORDS = '/var/lib/acetate/node-id-ranges.json';
export const ID_RECORDS_ENV = 'ACETATE_ID_RECORDS';

/** A bound on the file's size: 10,000 containers' records are ≈ 1.5 MB. */
const MAX_RECORDS_BYTES = 16 * 1024 * 1024;

export interface IdRecordOwner {
  /** The instance's state dir (absolute). */
  stateDir: string;
  /** The container's dir name under <stateDir>/containers (namespace_name). */
  container: string;
}

export interface IdRecord {
  owner: IdRecordOwner;
  ranges: IdRange[];
}

function isRange(v: unknown): v is IdRange {
  const r = v as IdRange;
  return typeof r === 'object' && r !== null && Number.isSafeInteger(r.hostID) && Number.isSafeInteger(r.size) && r.hostID >= 0 && r.size > 0;
}

/** The records in `text`; throws naming the file on anything else (never read as "none held": ranges would be given twice). */
function parse(text: string, file: string): IdRecord[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new IdPoolError(`${file}: not JSON (${(err as Error).message}): fix or remove it (acetate rebuilds it from the state dirs that use it)`, {
      cause: err,
    });
  }
  const records = (doc as { records?: unknown })?.records;
  if (!Array.isArray(records)) throw new IdPoolError(`${file}: must be { "version": 1, "records": [...] }`);
  return records.map((r: unknown, i) => asRecord(r, `${file}: records[${i}]`));
}

function asRecord(r: unknown, where: string): IdRecord {
  const o = (r as IdRecord)?.owner;
  const ranges = (r as IdRecord)?.ranges;
  if (typeof o?.stateDir !== 'string' || typeof o.container !== 'string' || !Array.isArray(ranges) || !ranges.every(isRange))
    throw new IdPoolError(`${where} must be { owner: { stateDir, container }, ranges: [{ hostID, size }] }`);
  return { owner: { stateDir: o.stateDir, container: o.container }, ranges: ranges.map((x) => ({ hostID: x.hostID, size: x.size })) };
}

/**
 * The journal next to the records, <file>.log: one line per change since the file was last
 * written whole, `{ owner, ranges }` (the owner's ranges now; none: it holds none). An allocation
 * appends its line (one write(2) with O_APPEND), instead of writing every record again (2,500
 * records: ≈ 230 KB at each create); the process folds the journal into the file when it lets go
 * of the lock (compactIdRecordsSync). A last line cut short (a crash while appending) is ignored.
 */
export function journalOf(file: string): string {
  return `${file}.log`;
}

function applyJournal(records: IdRecord[], text: string, journal: string): IdRecord[] {
  const byOwner = new Map(records.map((r) => [`${r.owner.stateDir}\0${r.owner.container}`, r]));
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or a line cut short
  lines.forEach((line, i) => {
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch (err) {
      throw new IdPoolError(`${journal}:${i + 1}: not JSON: fix or remove it`, { cause: err });
    }
    const r = asRecord(doc, `${journal}:${i + 1}`);
    const k = `${r.owner.stateDir}\0${r.owner.container}`;
    byOwner.delete(k); // a changed owner goes last, as a rewrite would put it
    if (r.ranges.length) byOwner.set(k, r);
  });
  return [...byOwner.values()];
}

/** The records and their journal; throws on anything unreadable (never read as "none held"). */
function readIdRecordsStrictSync(file: string): IdRecord[] {
  const text = readTrusted(file);
  const records = text === undefined ? [] : parse(text, file);
  const journal = readTrusted(journalOf(file));
  return journal === undefined ? records : applyJournal(records, journal, journalOf(file));
}

/** Appends the owners' ranges now to the journal (id-ranges.ts, under the lock). */
export function appendIdRecords(file: string, records: readonly IdRecord[]): void {
  if (!records.length) return;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(journalOf(file), records.map((r) => `${JSON.stringify({ owner: r.owner, ranges: r.ranges })}\n`).join(''), { mode: 0o600 });
}

/** Under the lock, as this process lets go of it: the journal folded into the file (nothing when there is none). */
export function compactIdRecordsSync(file: string): void {
  if (!existsSync(journalOf(file))) return;
  writeIdRecordsSync(file, readIdRecordsStrictSync(file));
}

const TRUST = {
  what: "the node's id records file",
  maxBytes: MAX_RECORDS_BYTES,
  error: (message: string, cause?: unknown) => new IdPoolError(message, cause === undefined ? undefined : { cause }),
};

/**
 * The file's text, or undefined when it does not exist; refused (an IdPoolError naming the file and
 * why) unless it and its dir are root's and writable by root only, it is a plain file (not a
 * symlink) and at most 16 MiB. Every instance's allocations follow it: one that anyone but root
 * could write could be given a record covering the whole pool (every create "pool full") or
 * dropping another's ranges (two containers given one range).
 */
function readTrusted(file: string): string | undefined {
  return readTrustedFileSync(file, TRUST);
}

/** Before the records' lock is made beside them: their dir must be root's alone (IdPoolError naming it). */
export function refuseUntrustedRecordsDir(file: string): void {
  refuseUntrustedDirSync(file, TRUST);
}

/** The records and their journal; throws (IdPoolError naming the file) on a file anyone but root could write, too large, or malformed. */
export async function readIdRecords(file: string): Promise<IdRecord[]> {
  return readIdRecordsStrictSync(file);
}

/** The last parse of each file, by its size and mtime: the loop plans often, the file changes at creates. */
const parsed = new Map<string, { stamp: string; records: IdRecord[] }>();

/** For plan's facts (sync): the records, or none when the file cannot be read or is refused (plan only predicts; the allocator decides and refuses). */
export function readIdRecordsSync(file: string): IdRecord[] {
  try {
    const st = statSync(file);
    const j = statSync(journalOf(file), { throwIfNoEntry: false });
    const stamp = `${st.size}:${st.mtimeMs}:${st.ino}:${st.uid}:${st.mode}:${j ? `${j.size}:${j.mtimeMs}:${j.ino}:${j.uid}:${j.mode}` : ''}`;
    const hit = parsed.get(file);
    if (hit?.stamp === stamp) return hit.records;
    const records = readIdRecordsStrictSync(file);
    parsed.set(file, { stamp, records });
    return records;
  } catch {
    return [];
  }
}

/** The records written whole (the journal, now in them, removed). */
export function writeIdRecordsSync(file: string, records: readonly IdRecord[]): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // One line per record, not indented (2,500 records: ≈ 230 KB, against ≈ 560 KB indented).
  const lines = records.map((r) => JSON.stringify({ owner: r.owner, ranges: r.ranges }));
  writeFileAtomicSync(file, `{ "version": 1, "records": [\n${lines.join(',\n')}\n] }\n`, 0o600);
  rmSync(journalOf(file), { force: true });
}

export async function writeIdRecords(file: string, records: readonly IdRecord[]): Promise<void> {
  writeIdRecordsSync(file, records);
}

/** The owner's container dir still exists (its state dir too): the record holds its ranges. */
export async function ownerExists(o: IdRecordOwner): Promise<boolean> {
  try {
    return (await stat(path.join(o.stateDir, 'containers', o.container))).isDirectory();
  } catch {
    return false;
  }
}
