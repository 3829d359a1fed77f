/**
 * The running loop's view of its containers (observed.ts) and their status records, served on a
 * Unix socket in the run dir to `acetate get` and `acetate plan` on the same node
 * (cli/loop-view.ts), so that they need not read 2,500 containers' files again.
 *
 * - Local and root's only: a socket file of mode 0600 in the run dir (0700, root's), never a TCP
 *   port (container specs and addresses are tenants' data; the metrics port is readable by any
 *   local user).
 * - Read-only: GET /v1/observed. Nothing a request says is used but its path.
 * - Answers only when the view is whole (after the loop's first sync) and the asker is the same
 *   build (the shapes it sends are this build's): otherwise 503, and the asker reads the node.
 * - A container's disk use is what changes without any event: those with a disk of their own
 *   are read again for each answer (one statfs each, through the loop's runtime: the view gets
 *   them too).
 */
import http from 'node:http';
import { lstat, chmod, rm } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { ActualContainer } from '../runtime/runtime.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { buildStamp } from '../util/build-stamp.js';

export const VIEW_SOCKET = 'loop.sock';
export const VIEW_PATH = '/v1/observed';

/** What GET /v1/observed answers. */
export interface ObservedAnswer {
  build: string;
  /** The loop's pid. */
  pid: number;
  /** When this answer was made (ISO). */
  observedAt: string;
  containers: ActualContainer[];
  records: StatusRecord[];
}

export interface ViewSource {
  /** Every container as last seen; undefined while the view is not whole. */
  containers(): ActualContainer[] | undefined;
  records(): StatusRecord[];
  /** Reads these containers again (through the loop's runtime, so the view has them too). */
  reread(keys: string[]): Promise<void>;
}

export function viewSocketPath(runDir: string): string {
  return path.join(runDir, VIEW_SOCKET);
}

export async function serveView(runDir: string, view: ViewSource): Promise<{ path: string; close(): Promise<void> }> {
  const file = viewSocketPath(runDir);
  const server = http.createServer((req, res) => {
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      // A length, not chunks: the asker reads the answer into one buffer of that size.
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, 'GET only\n');
    if ((req.url ?? '').split('?')[0] !== VIEW_PATH) return reply(404, 'not found\n');
    if (req.headers['x-acetate-build'] !== buildStamp()) return reply(503, 'another build of acetate: read the node\n');
    const query = (req.url ?? '').split('?')[1] ?? '';
    const purpose: Purpose = new URLSearchParams(query).get('for') === 'plan' ? 'plan' : 'get'; // URLSearchParams never throws
    answer(view, purpose).then(
      (pieces) => {
        if (!pieces) return reply(503, 'not ready: first sync not finished\n');
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': pieces.reduce((n, b) => n + b.length, 0) });
        res.cork();
        for (const b of pieces) res.write(b);
        res.end();
      },
      (err: unknown) => reply(500, `${(err as Error).message}\n`),
    );
  });
  await removeStaleSocket(file);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(file, 0o600);
  return {
    path: file,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await rm(file, { force: true });
    },
  };
}

/**
 * The answer as pieces off V8's heap (one Buffer per container and record): no 6 MB string is
 * built in the loop's heap for each ask (at 2,500 containers that string, and the full collection
 * it set off in the loop's small heap, took 70-300 ms), and nothing is kept between asks.
 */
async function answer(view: ViewSource, purpose: Purpose): Promise<Buffer[] | undefined> {
  let containers = view.containers();
  if (!containers) return undefined;
  const withDisk = containers.filter((c) => c.disk !== undefined || c.applied.spec.resources.diskBytes !== undefined).map((c) => c.key);
  if (withDisk.length) {
    const limit = pLimit(16);
    await Promise.all(withDisk.map((k) => limit(() => view.reread([k]))));
    containers = view.containers() ?? containers;
  }
  const head: Omit<ObservedAnswer, 'containers' | 'records'> = { build: buildStamp(), pid: process.pid, observedAt: new Date().toISOString() };
  const out = [Buffer.from(`${JSON.stringify(head).slice(0, -1)},"containers":[`)];
  const list = (items: object[]): void => items.forEach((o, i) => out.push(Buffer.from(i ? `,${JSON.stringify(o)}` : JSON.stringify(o))));
  list(containers);
  out.push(Buffer.from('],"records":['));
  const present = new Set(containers.map((c) => c.key));
  list(view.records().flatMap((r) => recordFor(r, purpose, present.has(r.key)) ?? []));
  out.push(Buffer.from(']}'));
  return out;
}

/** What the asker reads of the records: `plan` weighs crash-loop back-offs and probe verdicts; `get` shows status. */
export type Purpose = 'get' | 'plan';

/**
 * A record as far as the asker reads it (the rest is half of the answer's size at 2,500):
 * plan reads crashLoop and unhealthy of the current incarnation (controller/crashloop.ts
 * backoffFacts, probes/unhealthy.ts unhealthyFacts); get reads the status, errors, problems and
 * source, and the desired/actual summaries only of a container that does not exist (its waiting
 * row and isOfIncarnation); recentActions are describe's, which reads the files.
 */
export function recordFor(r: StatusRecord, purpose: Purpose, hasContainer: boolean): Partial<StatusRecord> | undefined {
  if (purpose === 'plan') {
    if (!r.crashLoop && !r.unhealthy) return undefined;
    return { key: r.key, incarnation: r.incarnation, crashLoop: r.crashLoop, unhealthy: r.unhealthy } as Partial<StatusRecord>;
  }
  const { recentActions: _a, updatedAt: _u, ...shown } = r;
  if (!hasContainer) return shown;
  const { desired: _d, actual: _x, ...withContainer } = shown;
  return withContainer;
}

/**
 * A socket left by a loop that was killed (the caller holds the node lock: no live loop serves
 * it). Anything else under that name is not ours to remove.
 */
async function removeStaleSocket(file: string): Promise<void> {
  let st;
  try {
    st = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${file} exists and is not a socket: not removed, the loop's view is not served`);
  await rm(file, { force: true });
}
