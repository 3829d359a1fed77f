/**
 * The rows of `acetate get`'s table, made the same way from the node's files (get --direct) and
 * by the running loop from its view (view-socket.ts, `for=table`): one code for both, so the
 * table beside a loop is the table without one.
 *
 * Why the loop makes them: at 2,500 containers the whole objects are ~4 MB of JSON, and parsing
 * them (and collecting them) was most of what a `get` beside the loop took; the rows are a tenth
 * of that. AGE is left to the asker: it is relative to the moment the table is printed.
 */
import type { ActualContainer } from '../runtime/runtime.js';
import type { ResourceName, Resources, SourceRef } from '../api/types.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { formatResource } from '../plan/compare.js';
import { isOfIncarnation, statusSummary } from './status-store.js';
import { networkSummary } from './network-status.js';
import { idsColumn } from './publish.js';
import { templateColumn } from '../images/describe.js';

/** Columns of the table; AGE is the asker's (cellsAt), the WIDE ones only with -o wide. */
export const HEADERS = ['NAME', 'STATE', 'PID', 'CPU', 'MEMORY', 'RESTARTS', 'AGE', 'STATUS'];
export const WIDE_HEADERS = ['IP', 'PORTS', 'PIDS', 'DISK', 'IDS', 'TEMPLATE', 'SOURCE', 'REVISION'];

/** A row without its AGE: the cells of HEADERS but AGE, in order, and when the container was made. */
export interface ContainerRow {
  key: string;
  namespace: string;
  createdAt?: string;
  cells: string[];
}

/** What a row reads of a status record. */
export type RowRecord = Pick<StatusRecord, 'status' | 'lastError'>;

const FIELD: Record<ResourceName, keyof Resources> = { cpu: 'cpuMillis', memory: 'memoryBytes', pids: 'pids', disk: 'diskBytes' };

/** STATE: Running, Paused (frozen), Succeeded, Failed(code), OOMKilled(code), Stopped, Pending, Unknown. */
export function phase(c: Pick<ActualContainer, 'process' | 'applied'>): string {
  if (c.process.state === 'running') return c.process.paused ? 'Paused' : 'Running';
  if (c.process.state === 'exited') {
    if (c.process.reason === 'OOMKilled') return `OOMKilled(${c.process.exitCode ?? '?'})`;
    if (c.process.exitCode === undefined) return 'Unknown'; // ended unsupervised: see describe
    return c.process.exitCode === 0 ? 'Succeeded' : `Failed(${c.process.exitCode})`;
  }
  return c.applied.spec.state === 'Stopped' ? 'Stopped' : 'Pending';
}

/** "512Mi/512Mi": desired (applied) / actual (from the cgroup). */
function pair(c: ActualContainer, r: ResourceName): string {
  const want = formatResource(r, c.applied.spec.resources[FIELD[r]]);
  if (c.process.state !== 'running') return `${want}/-`;
  return `${want}/${formatResource(r, c.limits[FIELD[r]])}`;
}

/** DISK column: "used/total" of the private area's filesystem, "-" without a disk limit. */
function diskColumn(c: ActualContainer): string {
  if (!c.disk) return c.applied.spec.resources.diskBytes === undefined ? '-' : `?/${formatResource('disk', c.applied.spec.resources.diskBytes)}`;
  const mi = (n: number) => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;
  return `${mi(c.disk.usedBytes)}/${mi(c.disk.totalBytes)}`;
}

/** "…" past 60 characters: one status stays one line of the table. */
function clip60(msg: string): string {
  return msg.length > 60 ? `${msg.slice(0, 57)}...` : msg;
}

/** STATUS column: Ready, or the reason it is not (from the loop's last reconcile), with the error. */
function statusColumn(rec: RowRecord | undefined): string {
  if (!rec) return '-';
  const sum = statusSummary(rec);
  const text = sum.ready && !sum.reason ? 'Ready' : (sum.reason ?? 'NotReady');
  const msg = rec.lastError?.message ?? sum.message;
  return msg && (!sum.ready || sum.reason) ? `${text}: ${clip60(msg)}` : text;
}

/** The Git commit the container's spec is synced to, short as git prints it; - for other sources. */
function revisionColumn(src: SourceRef): string {
  return src.kind === 'file' && src.revision ? src.revision.slice(0, 7) : '-';
}

/**
 * Each container's own status record, by key: not one of an earlier container of the same name
 * (status-store.ts isOfIncarnation). What a row is made with, from the files and in the loop.
 */
export function ownRecords<R extends Pick<StatusRecord, 'key' | 'incarnation' | 'actual'>>(
  containers: readonly Pick<ActualContainer, 'key' | 'applied'>[],
  records: readonly R[],
): Map<string, R> {
  const byKey = new Map(records.map((r) => [r.key, r]));
  const own = new Map<string, R>();
  for (const c of containers) {
    const r = byKey.get(c.key);
    if (r && isOfIncarnation(r, c.applied.createdAt)) own.set(c.key, r);
  }
  return own;
}

/** `rec` is the container's own record (ownRecords), if it has one. */
export function containerRow(c: ActualContainer, rec: RowRecord | undefined): ContainerRow {
  return {
    key: c.key,
    namespace: c.namespace,
    createdAt: c.applied.createdAt,
    cells: [
      c.namespace === 'default' ? c.name : c.key,
      phase(c),
      c.process.pid ? String(c.process.pid) : '-',
      pair(c, 'cpu'),
      pair(c, 'memory'),
      String(c.restartCount),
      c.process.unsupervised ? `${c.process.state === 'running' ? 'SupervisorLost' : 'ExitCodeUnknown'}: ${clip60(c.process.unsupervised)}` : statusColumn(rec),
    ],
  };
}

/** The WIDE_HEADERS cells of a container. */
export function wideCells(c: ActualContainer, rec: Pick<StatusRecord, 'source'> | undefined): string[] {
  return [
    c.network?.ip ?? '-',
    c.applied.spec.network === 'bridge' ? networkSummary(c).ports : '-',
    pair(c, 'pids'),
    diskColumn(c),
    idsColumn(c),
    templateColumn(c.applied.spec),
    c.applied.source.kind === 'file' ? `${c.applied.source.file}:${c.applied.source.line}` : `kube:${c.applied.source.uid}`,
    revisionColumn(rec?.source ?? c.applied.source),
  ];
}

/** A record of a container that waits to be created (an image that cannot be pulled). */
export type WaitingRecord = Pick<StatusRecord, 'key' | 'namespace' | 'name' | 'desired'> & { waiting: NonNullable<StatusRecord['waiting']> };

export function isWaiting<R extends Pick<StatusRecord, 'actual' | 'waiting' | 'desired'>>(r: R): r is R & { waiting: NonNullable<StatusRecord['waiting']> } {
  return r.actual === undefined && r.waiting !== undefined && r.desired !== undefined;
}

/** Its row: "Waiting", and why (ErrImagePull: registry 127.0.0.1:5000 did not answer...). */
export function waitingRow(r: WaitingRecord): ContainerRow {
  return {
    key: r.key,
    namespace: r.namespace,
    cells: [
      r.namespace === 'default' ? r.name : r.key,
      'Waiting',
      '-',
      `${r.desired?.resources.cpu ?? 'unlimited'}/-`,
      `${r.desired?.resources.memory ?? 'unlimited'}/-`,
      '0',
      `${r.waiting.reason}: ${clip60(r.waiting.message)}`,
    ],
  };
}

export function waitingWideCells(r: WaitingRecord): string[] {
  return ['-', '-', '-', '-', '-', r.desired?.template || '-', '-', '-']; // an image's container has no template ('')
}

/** The row's cells with its AGE as `age` gives it now (in HEADERS' order), as table() prints them. */
export function cellsAt(row: ContainerRow, age: (createdAt: string | undefined) => string): string[] {
  return [...row.cells.slice(0, 6), row.createdAt === undefined ? '-' : age(row.createdAt), ...row.cells.slice(6)];
}
