/**
 * The running loop's view of its containers (observed.ts) and their status records, served on a
 * Unix socket in the run dir to `acetate get` and `acetate plan` on the same node
 * (cli/loop-view.ts), so that they need not read 2,500 containers' files again.
 *
 * - Local and root's only: a socket file of mode 0600, bound under a private directory and
 *   renamed into place (never reachable with the umask's mode, whatever the run dir's mode is),
 *   never a TCP port (container specs and environments are tenants' data; the metrics port is
 *   open to any local user).
 * - GET /v1/observed?for=get|table|plan. The path, the build header and `for` are all a request
 *   says that is read. POST /v1/plan: the loop plans `acetate plan -f DIR` itself, when given a
 *   planner (view-plan.ts). Planning changes nothing: what the loop reads of the directory for
 *   it is never what the loop acts on (FileSource.readForAsker).
 * - Answers only when the view is whole (after the loop's first sync, no container unknown) and
 *   the asker is this very build (the shapes sent are this build's): otherwise 503, and the asker
 *   reads the node itself.
 * - Nothing is read from the node for an answer: it is what the loop read (disk use included,
 *   which `get` reads again itself: cli/loop-view.ts).
 */
import http from 'node:http';
import { chmod, lstat, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ActualContainer } from '../runtime/runtime.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { messageOf } from '../contracts/errors.js';
import { buildStamp } from '../util/build-stamp.js';
import { closeServer, listenOn } from '../util/http-server.js';
import { answerPlanAsk, type Planner } from './view-plan.js';
import { BUILD_HEADER, PLAN_PATH, VIEW_PATH, purposeOf, recordFor, viewSocketPath, type ObservedAnswer, type Purpose } from './view-protocol.js';
import { containerRow, isWaiting, ownRecords, waitingRow } from './container-rows.js';

/** An asker that stops reading is dropped after this (objects are ~4.4 MB at 2,500 containers, rows 0.45 MB). */
const ANSWER_TIMEOUT_MS = 30_000;
/** Askers served at once; more wait in the kernel's backlog or time out and read the node. */
const MAX_ASKERS = 8;
/** An answer larger than this is not made (specs are the users': 2,500 containers' objects are ~4.4 MB). */
const MAX_ANSWER_BYTES = 128 * 2 ** 20;
/** Items turned into JSON between two turns of the event loop: reconciles and /healthz go on meanwhile. */
const SLICE = 200;
const BIND_DIR_PREFIX = '.loop-sock-';

export interface ViewSource {
  /** Every container as last seen; undefined while the view is not whole. */
  containers(): ActualContainer[] | undefined;
  records(): StatusRecord[];
  /** Changes whenever containers() or records() would give something else. */
  generation(): string;
}

export interface ViewServer {
  path: string;
  close(): Promise<void>;
}

export async function serveView(runDir: string, stateDir: string, view: ViewSource, planner?: Planner): Promise<ViewServer> {
  const file = viewSocketPath(runDir);
  const build = buildStamp(); // now, not at the first ask: a rebuild in place must not change this loop's stamp
  const answers = new Answers(view, { build, stateDir });
  const server = http.createServer((req, res) => {
    const reply = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      const [where, query = ''] = (req.url ?? '').split('?');
      if (where === PLAN_PATH && req.method === 'POST') {
        if (req.headers[BUILD_HEADER] !== build) return (req.resume(), reply(503, 'another build of acetate: plan yourself\n'));
        answerPlanAsk(req, planner, { build, stateDir })
          .then((a) => {
            if (req.socket.destroyed) return;
            res.writeHead(a.code, { 'content-type': a.type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(a.body) });
            res.end(a.body);
          })
          .catch(() => res.destroy()); // a failed answer is the asker's to notice (it plans itself), never the loop's end
        return;
      }
      if (req.method !== 'GET') return reply(405, 'GET only\n');
      if (where !== VIEW_PATH) return reply(404, 'not found\n');
      if (req.headers[BUILD_HEADER] !== build) return reply(503, 'another build of acetate: read the node\n');
      const purpose = purposeOf(new URLSearchParams(query).get('for'));
      answers.get(purpose).then(
        (a) => {
          if (req.socket.destroyed) return; // the asker gave up meanwhile
          if (a === 'not whole') return reply(503, 'not ready: the loop has not read every container\n');
          if (a === 'too large') return reply(503, `the answer would be over ${MAX_ANSWER_BYTES} bytes: read the node\n`);
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': a.bytes });
          res.cork();
          for (const b of a.pieces) res.write(b);
          res.end();
        },
        (err: unknown) => (res.headersSent ? res.destroy() : reply(500, `${messageOf(err)}\n`)),
      );
    } catch (err) {
      if (!res.headersSent) reply(500, `${messageOf(err)}\n`);
      else res.destroy();
    }
  });
  server.maxConnections = MAX_ASKERS;
  server.setTimeout(ANSWER_TIMEOUT_MS, (socket) => socket.destroy());
  server.on('error', () => undefined); // after listen: a failed accept is the asker's problem, never the loop's
  await removeStaleSocket(file);
  await removeStaleBindDirs(runDir);
  // Bound inside a directory of our own (0700), made 0600, then moved to its name.
  const tmp = await mkdtemp(path.join(runDir, BIND_DIR_PREFIX));
  try {
    const bound = path.join(tmp, 's');
    await listenOn(server, { path: bound });
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
      await closeServer(server);
      await rm(file, { force: true });
    },
  };
}

/** A table row as JSON, and what it was made of. */
interface MadeRow {
  of: ActualContainer;
  rec: StatusRecord | undefined;
  json: Buffer;
}

/** A container object as JSON (get's and plan's), and the object it was made of. */
interface MadeObject {
  of: ActualContainer;
  json: Buffer;
}

const COMMA = Buffer.from(',');

interface Built {
  pieces: Buffer[];
  bytes: number;
}

/**
 * Answers made once per generation of the view and purpose, shared by every asker of it (a
 * burst of `get`s costs the loop one answer), and kept only while they are current.
 *
 * Each is made as pieces off V8's heap (one Buffer per container and record), a slice at a time
 * with the event loop turning between slices: no 5 MB string is built in the loop's small heap
 * (that string, and the full collection it set off, took 70-300 ms at 2,500), and reconciles,
 * probes and /healthz go on while an answer is made.
 */
class Answers {
  private readonly made = new Map<Purpose, { generation: string; answer: Promise<Built | 'not whole' | 'too large'> }>();
  private madeRows = new Map<string, MadeRow>();
  private madeObjects = new Map<string, MadeObject>();

  constructor(
    private readonly view: ViewSource,
    private readonly head: Omit<ObservedAnswer, 'containers' | 'records'>,
  ) {}

  get(purpose: Purpose): Promise<Built | 'not whole' | 'too large'> {
    const generation = this.view.generation();
    const had = this.made.get(purpose);
    if (had?.generation === generation) return had.answer;
    const answer = this.make(purpose);
    this.made.set(purpose, { generation, answer });
    // An answer is not kept past its askers: a later ask puts it together again, from the rows and
    // objects kept as JSON while they are current (see rows() and objectJson()).
    const forget = (): void => void (this.made.get(purpose)?.answer === answer && this.made.delete(purpose));
    const forgetSoon = (): void => void setTimeout(forget, 1000).unref();
    answer.then(purpose === 'table' ? undefined : forgetSoon, forget); // one that failed is made again at the next ask
    return answer;
  }

  private async make(purpose: Purpose): Promise<Built | 'not whole' | 'too large'> {
    const containers = this.view.containers();
    if (!containers) return 'not whole';
    const pieces: Buffer[] = [Buffer.from(`${JSON.stringify(this.head).slice(0, -1)},"containers":[`)];
    let bytes = pieces[0]!.length;
    const add = async <T>(items: readonly T[], json: (item: T) => Buffer, close: string): Promise<boolean> => {
      for (let i = 0; i < items.length; i++) {
        if (i && i % SLICE === 0) await new Promise((r) => setImmediate(r));
        const b = json(items[i]!);
        bytes += b.length + (i ? 1 : 0);
        if (bytes > MAX_ANSWER_BYTES) return false;
        if (i) pieces.push(COMMA);
        pieces.push(b);
      }
      const end = Buffer.from(close);
      pieces.push(end);
      bytes += end.length;
      return true;
    };
    const asJson = (item: object): Buffer => Buffer.from(JSON.stringify(item));
    if (purpose === 'table') {
      const [rows, waiting] = this.rows(containers);
      if (!(await add(rows, (row) => row, '],"records":['))) return 'too large';
      if (!(await add(waiting, asJson, ']}'))) return 'too large';
      return { pieces, bytes };
    }
    const made = new Map<string, MadeObject>();
    if (!(await add(containers, (c) => this.objectJson(c, made), '],"records":['))) return 'too large';
    this.madeObjects = made; // those of containers gone are let go
    if (!(await add(this.records(containers, purpose), asJson, ']}'))) return 'too large';
    return { pieces, bytes };
  }

  /**
   * A container of get's and plan's answers as JSON, made again only when the view holds another
   * object for it (as rows() does): at 2,500 containers making them all was ~50 ms of the loop's
   * before each answer, which `plan` waited for. Kept off V8's heap: ~1.8 KB each, 4.4 MB at 2,500.
   */
  private objectJson(c: ActualContainer, made: Map<string, MadeObject>): Buffer {
    const had = this.madeObjects.get(c.key);
    const o = had?.of === c ? had : { of: c, json: keptJson(c) };
    made.set(c.key, o);
    return o.json;
  }

  private records(containers: ActualContainer[], purpose: 'get' | 'plan'): object[] {
    const present = new Set(containers.map((c) => c.key));
    return this.view.records().flatMap((r) => recordFor(r, purpose, present.has(r.key)) ?? []);
  }

  /**
   * get's table: a row per container (with its own record's status), and one per container that
   * waits. A row is made again only when what it is made of is another object than last time (the
   * view and the status store replace what changed, and keep the rest): after an edit of one of
   * 2,500 containers, one row is made, not 2,500 (which was 30-70 ms of the next `get`).
   */
  private rows(containers: ActualContainer[]): [Buffer[], object[]] {
    const records = this.view.records();
    const own = ownRecords(containers, records);
    const made = new Map<string, MadeRow>();
    const rows = containers.map((c) => {
      const rec = own.get(c.key);
      const had = this.madeRows.get(c.key);
      const row = had?.of === c && had.rec === rec ? had : { of: c, rec, json: keptJson(containerRow(c, rec)) };
      made.set(c.key, row);
      return row.json;
    });
    this.madeRows = made; // the rows of containers gone are let go
    return [rows, records.filter(isWaiting).map(waitingRow)];
  }
}

/**
 * JSON kept across answers, in a buffer of its own: Buffer.from puts small ones in a shared 8 KB
 * pool, which one kept slice would hold whole for as long as it is kept.
 */
function keptJson(value: unknown): Buffer {
  const text = JSON.stringify(value);
  const b = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  b.write(text);
  return b;
}

/** Bind dirs a loop killed while it started left (the caller holds the node lock: none is in use). */
async function removeStaleBindDirs(runDir: string): Promise<void> {
  const names = await readdir(runDir).catch(() => [] as string[]);
  for (const n of names) if (n.startsWith(BIND_DIR_PREFIX)) await rm(path.join(runDir, n), { recursive: true, force: true });
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
