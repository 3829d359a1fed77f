/**
 * Status on disk, so that `acetate get` and `acetate describe`, run as separate processes, can
 * show what the loop knows: phase, conditions, last error, restarts, source file, problems.
 *
 * Layout under <stateDir>/status/:
 *   containers/<namespace>/<name>.json   one StatusRecord per container
 *   problems.json                        the sources' current problems (invalid files, conflicts)
 *   controller.json                      the running loop: pid, metrics URL, readiness
 *
 * Every write is atomic (temporary file + rename) and happens only when the content changed.
 */
import { promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/write-file-atomic.js';
import type { ContainerStatus } from '../api/types.js';
import type { SourceProblem, SourceSyncState } from '../contracts/source.js';
import type { DetailedStatusSink } from '../contracts/sinks.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { readSmallFileNow } from '../util/small-file.js';
import { selfIdentity, type ProcessIdentity } from '../util/processes.js';

export const STATUS_DIR = 'status';

export interface ProblemsRecord {
  problems: SourceProblem[];
  complete: boolean;
  incompleteReason?: string;
  updatedAt: string;
}

export interface ControllerRecord {
  pid: number;
  startedAt: string;
  metricsUrl?: string;
  sources: string[];
  /** Sources that fetch revisions (Git): the commit applied, the last error. */
  syncs?: SourceSyncState[];
  ready: boolean;
  updatedAt: string;
  /** Set when the loop stopped cleanly. */
  stoppedAt?: string;
}

function statusRoot(stateDir: string): string {
  return path.join(stateDir, STATUS_DIR);
}

function keyParts(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: 'default', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

function safeSegment(s: string): string {
  // Kubernetes names are DNS labels/subdomains; anything else is encoded so it stays one segment.
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && s !== '.' && s !== '..' ? s : encodeURIComponent(s).replace(/\./g, '%2E');
}

export function recordPath(stateDir: string, key: string): string {
  const { namespace, name } = keyParts(key);
  return path.join(statusRoot(stateDir), 'containers', safeSegment(namespace), `${safeSegment(name)}.json`);
}

async function writeAtomic(file: string, content: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  // Its temp file (`<name>.json.<n>`) does not end in .json: readStatusRecords passes over it.
  await writeFileAtomic()(file, content, { mode: 0o644, fsync: false });
}

/**
 * One synchronous read (see util/small-file.ts): get and plan read a record per container, and
 * fs.promises' four thread-pool round trips per file were the largest part of `acetate get` over
 * 500 containers.
 */
async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(readSmallFileNow(file)) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** The content that matters for "did it change" (not the time it was written). */
function comparable(r: StatusRecord | ProblemsRecord | ControllerRecord): string {
  const { updatedAt: _u, ...rest } = r;
  return JSON.stringify(rest);
}

export class StatusStore implements DetailedStatusSink {
  private records = new Map<string, StatusRecord>();
  /** Changes with every record set or removed (the loop's view socket builds an answer once per generation). */
  generation = 0;
  /** What was last written to each node-wide file (problems.json, controller.json), comparable. */
  private lastWritten = new Map<string, string>();
  private writes = new Map<string, Promise<void>>();

  constructor(readonly stateDir: string) {}

  /** Loads the records written by a previous run (to keep lastTransitionTime across restarts). */
  async load(): Promise<StatusRecord[]> {
    const list = await readStatusRecords(this.stateDir);
    for (const r of list) this.records.set(r.key, r);
    this.generation++;
    return list;
  }

  previous(key: string): StatusRecord | undefined {
    return this.records.get(key);
  }

  keys(): string[] {
    return [...this.records.keys()];
  }

  /** Every record as last published (what the files hold once the writes in flight are done), sorted by key. */
  all(): StatusRecord[] {
    return [...this.records.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * StatusSink: only the status part changes; the rest of the record is kept, but for a probe
   * verdict (a verdict is only ever the one given now: see publishDetailed).
   */
  async publish(key: string, status: ContainerStatus): Promise<void> {
    const prev = this.records.get(key);
    const { namespace, name } = keyParts(key);
    const rec: StatusRecord = prev
      ? { ...prev, status, updatedAt: new Date().toISOString() }
      : { key, namespace, name, status, problems: [], recentActions: [], updatedAt: new Date().toISOString() };
    delete rec.unhealthy;
    await this.publishDetailed(rec);
  }

  /**
   * A probe verdict in the record is signed with this process (pid and start time): it was made
   * by this process's prober and is a fact only while that prober lives, which is what readers
   * check (`acetate plan` beside a live `acetate run`; never a verdict a dead loop left).
   */
  async publishDetailed(given: StatusRecord): Promise<void> {
    const record = signed(given, await selfIdentity()); // awaited by every call: they keep their order
    const prev = this.records.get(record.key);
    this.records.set(record.key, record);
    this.generation++;
    if (prev && comparable(prev) === comparable(record)) return;
    await this.serialize(record.key, () => writeAtomic(recordPath(this.stateDir, record.key), `${JSON.stringify(record, null, 2)}\n`));
  }

  async remove(key: string): Promise<void> {
    this.records.delete(key);
    this.generation++;
    await this.serialize(key, async () => {
      const file = recordPath(this.stateDir, key);
      await fs.rm(file, { force: true });
      await fs.rmdir(path.dirname(file)).catch(() => undefined); // only when empty
    });
  }

  async writeProblems(p: Omit<ProblemsRecord, 'updatedAt'>): Promise<void> {
    await this.writeNodeFile('problems.json', { ...p, updatedAt: new Date().toISOString() });
  }

  async writeController(c: Omit<ControllerRecord, 'updatedAt'>): Promise<void> {
    await this.writeNodeFile('controller.json', { ...c, updatedAt: new Date().toISOString() });
  }

  /** Writes a node-wide record only when it changed (apart from its time). */
  private async writeNodeFile(name: string, rec: ProblemsRecord | ControllerRecord): Promise<void> {
    const c = comparable(rec);
    if (c === this.lastWritten.get(name)) return;
    this.lastWritten.set(name, c);
    await this.serialize(`#${name}`, () => writeAtomic(path.join(statusRoot(this.stateDir), name), `${JSON.stringify(rec, null, 2)}\n`));
  }

  /** Waits for pending writes. */
  async flush(): Promise<void> {
    await Promise.all([...this.writes.values()]);
  }

  private serialize(id: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.writes.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.writes.set(id, next);
    void next
      .finally(() => {
        if (this.writes.get(id) === next) this.writes.delete(id);
      })
      .catch(() => undefined);
    return next;
  }
}

/** The record with its probe verdict signed by `by` (none known: unsigned, so never honoured). */
function signed(record: StatusRecord, by: ProcessIdentity | undefined): StatusRecord {
  if (!record.unhealthy) return record;
  const { by: _other, ...verdict } = record.unhealthy;
  return { ...record, unhealthy: by ? { ...verdict, by: { pid: by.pid, startTicks: by.startTicks } } : verdict };
}

// --- readers, for `acetate get` / `acetate describe` ------------------------------------------------

/** Every container status record under <stateDir>/status, sorted by key. */
export async function readStatusRecords(stateDir: string): Promise<StatusRecord[]> {
  const root = path.join(statusRoot(stateDir), 'containers');
  let namespaces: string[];
  try {
    namespaces = readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: StatusRecord[] = [];
  for (const ns of namespaces) {
    if (ns.startsWith('.')) continue;
    let names: string[];
    try {
      names = readdirSync(path.join(root, ns));
    } catch {
      continue;
    }
    for (const n of names) {
      if (n.startsWith('.') || !n.endsWith('.json')) continue;
      const r = await readJson<StatusRecord>(path.join(root, ns, n));
      if (r && typeof r.key === 'string') out.push(r);
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export function readStatusRecord(stateDir: string, key: string): Promise<StatusRecord | undefined> {
  return readJson<StatusRecord>(recordPath(stateDir, key));
}

export function readProblems(stateDir: string): Promise<ProblemsRecord | undefined> {
  return readJson<ProblemsRecord>(path.join(statusRoot(stateDir), 'problems.json'));
}

export function readControllerRecord(stateDir: string): Promise<ControllerRecord | undefined> {
  return readJson<ControllerRecord>(path.join(statusRoot(stateDir), 'controller.json'));
}

/** True when the controller record names a live process (signal 0). */
export function controllerAlive(rec: ControllerRecord | undefined): boolean {
  if (!rec || rec.stoppedAt) return false;
  try {
    process.kill(rec.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a stored record describes the container that exists now (`createdAt` of its applied
 * record; undefined: none exists). A record without incarnation predates it and is accepted
 * while a container exists.
 */
export function isOfIncarnation(rec: Pick<StatusRecord, 'incarnation' | 'actual'>, createdAt: string | undefined): boolean {
  if (createdAt === undefined) return rec.actual === undefined;
  return rec.incarnation === undefined || rec.incarnation === createdAt;
}

/** Removes the stored status of a container (after a destroy by `acetate apply`). */
export async function removeStatusRecord(stateDir: string, key: string): Promise<void> {
  const file = recordPath(stateDir, key);
  await fs.rm(file, { force: true });
  await fs.rmdir(path.dirname(file)).catch(() => undefined); // only when empty
}

/**
 * What `acetate get` shows of a record in one line: the phase, and the condition that explains
 * best why the container is not simply converged (Synced=False first, then Ready=False, then a
 * pending resize), with its message.
 */
export function statusSummary(rec: Pick<StatusRecord, 'status'>): { phase: string; ready: boolean; reason?: string; message?: string } {
  const conds = rec.status.conditions ?? [];
  const ready = conds.find((c) => c.type === 'Ready')?.status === 'True';
  const synced = conds.find((c) => c.type === 'Synced');
  const readyCond = conds.find((c) => c.type === 'Ready');
  const resize = conds.find((c) => c.type === 'ResizePending');
  const supervised = conds.find((c) => c.type === 'Supervised');
  const pick =
    synced?.status === 'False'
      ? synced
      : readyCond?.status === 'False'
        ? readyCond
        : supervised?.status === 'False'
          ? supervised
          : resize?.status === 'True'
            ? resize
            : undefined;
  const out: { phase: string; ready: boolean; reason?: string; message?: string } = { phase: rec.status.phase ?? 'Unknown', ready };
  if (pick?.reason) out.reason = pick.reason;
  if (pick?.message) out.message = pick.message;
  return out;
}
