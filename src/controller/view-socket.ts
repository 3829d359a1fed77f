/**
 * The running loop's view of its containers (observed.ts) and their status records, served on a
 * Unix socket in the run dir to `acetate get` and `acetate plan` on the same node
 * (cli/loop-view.ts), so that they need not read 2,500 containers' files again.
 *
 * - Local and root's only: a socket file of mode 0600, bound under a private directory and
 *   renamed into place (never reachable with the umask's mode, whatever the run dir's mode is),
 *   never a TCP port (container specs and environments are tenants' data; the metrics port is
 *   open to any local user).
 * - Read-only: GET /v1/observed?for=get|plan. The path, the build header and `for` are all a
 *   request says that is read.
 * - Answers only when the view is whole (after the loop's first sync, no container unknown) and
 *   the asker is this very build (the shapes sent are this build's): otherwise 503, and the asker
 *   reads the node itself.
 * - Nothing is read from the node for an answer: it is what the loop read (disk use included,
 *   which `get` reads again itself: cli/loop-view.ts).
 */
import http from 'node:http';
import { chmod, lstat, mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ActualContainer } from '../runtime/runtime.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { messageOf } from '../contracts/errors.js';
import { buildStamp } from '../util/build-stamp.js';
import { BUILD_HEADER, VIEW_PATH, recordFor, viewSocketPath, type ObservedAnswer, type Purpose } from './view-protocol.js';

/** An asker that stops reading is dropped after this (its answer is ~5 MB at 2,500 containers). */
const ANSWER_TIMEOUT_MS = 30_000;

export interface ViewSource {
  /** Every container as last seen; undefined while the view is not whole. */
  containers(): ActualContainer[] | undefined;
  records(): StatusRecord[];
}

export interface ViewServer {
  path: string;
  close(): Promise<void>;
}

export async function serveView(runDir: string, stateDir: string, view: ViewSource): Promise<ViewServer> {
  const file = viewSocketPath(runDir);
  const build = buildStamp(); // now, not at the first ask: a rebuild in place must not change this loop's stamp
  const server = http.createServer((req, res) => {
    const reply = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      const [where, query = ''] = (req.url ?? '').split('?');
      if (req.method !== 'GET') return reply(405, 'GET only\n');
      if (where !== VIEW_PATH) return reply(404, 'not found\n');
      if (req.headers[BUILD_HEADER] !== build) return reply(503, 'another build of acetate: read the node\n');
      const purpose: Purpose = new URLSearchParams(query).get('for') === 'plan' ? 'plan' : 'get';
      const pieces = answer(view, purpose, { build, stateDir });
      if (!pieces) return reply(503, 'not ready: the loop has not read every container\n');
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': pieces.reduce((n, b) => n + b.length, 0) });
      res.cork();
      for (const b of pieces) res.write(b);
      res.end();
    } catch (err) {
      if (!res.headersSent) reply(500, `${messageOf(err)}\n`);
      else res.destroy();
    }
  });
  server.setTimeout(ANSWER_TIMEOUT_MS, (socket) => socket.destroy());
  server.on('error', () => undefined); // after listen: a failed accept is the asker's problem, never the loop's
  await removeStaleSocket(file);
  // Bound inside a directory of our own (0700), made 0600, then moved to its name.
  const tmp = await mkdtemp(path.join(runDir, '.loop-sock-'));
  try {
    const bound = path.join(tmp, 's');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bound, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(bound, 0o600);
    await rename(bound, file);
  } catch (err) {
    server.close();
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
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
 * The answer as pieces off V8's heap (one Buffer per container and record): no 5 MB string is
 * built in the loop's small heap for each ask (at 2,500 containers that string, and the full
 * collection it set off, took 70-300 ms), and nothing is kept between asks.
 */
function answer(view: ViewSource, purpose: Purpose, head: Omit<ObservedAnswer, 'containers' | 'records'>): Buffer[] | undefined {
  const containers = view.containers();
  if (!containers) return undefined;
  const out = [Buffer.from(`${JSON.stringify(head).slice(0, -1)},"containers":[`)];
  const list = (items: object[]): void => items.forEach((o, i) => out.push(Buffer.from(i ? `,${JSON.stringify(o)}` : JSON.stringify(o))));
  list(containers);
  out.push(Buffer.from('],"records":['));
  const present = new Set(containers.map((c) => c.key));
  list(view.records().flatMap((r) => recordFor(r, purpose, present.has(r.key)) ?? []));
  out.push(Buffer.from(']}'));
  return out;
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
