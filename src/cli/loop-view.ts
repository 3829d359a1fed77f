/**
 * Asks the `acetate run` of this state dir for its view of the containers (controller/
 * view-socket.ts) instead of reading every container's files: `get` and `plan` at 2,500
 * containers take a fraction of the time, and plan sees what the loop acts on.
 *
 * Any answer but a whole, well-formed one of this very build for this state dir (no loop, one
 * still in its first sync, another build, a socket not root's, a loop that does not answer within
 * the timeout) gives undefined, and the caller reads the node itself, as it always could.
 */
import http from 'node:http';
import net from 'node:net';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ActualContainer, Runtime } from '../runtime/runtime.js';
import {
  BUILD_HEADER,
  PLAN_PATH,
  VIEW_PATH,
  viewSocketPath,
  type GetRecord,
  type ObservedAnswer,
  type PlanAnswer,
  type PlanAsk,
  type PlanMade,
  type PlanRecord,
  type Purpose,
} from '../controller/view-protocol.js';
import type { ContainerRow } from '../controller/container-rows.js';
import { buildStamp } from '../util/build-stamp.js';

/** A loop that does not answer within this is passed by (the node is read instead). */
const ANSWER_TIMEOUT_MS = 3_000;
/** An answer larger than this is not read (2,500 containers' objects are ~4.4 MB). */
const MAX_ANSWER_BYTES = 256 * 2 ** 20;

export interface LoopView<R, C = ActualContainer> {
  containers: C[];
  records: R[];
}

export function askLoop(runDir: string | undefined, stateDir: string, purpose: 'get'): Promise<LoopView<GetRecord> | undefined>;
export function askLoop(runDir: string | undefined, stateDir: string, purpose: 'table'): Promise<LoopView<ContainerRow, ContainerRow> | undefined>;
export function askLoop(runDir: string | undefined, stateDir: string, purpose: 'plan'): Promise<LoopView<PlanRecord> | undefined>;
export async function askLoop(runDir: string | undefined, stateDir: string, purpose: Purpose): Promise<LoopView<unknown, unknown> | undefined> {
  const { answer: body } = await askOwn<ObservedAnswer>(runDir, stateDir, `${VIEW_PATH}?for=${purpose}`);
  if (!body || !Array.isArray(body.containers) || !Array.isArray(body.records)) return undefined;
  return { containers: body.containers, records: body.records };
}

/**
 * The containers of `view` with a disk of their own, their use read again now (a statfs each):
 * the one figure that changes with no event the loop would see.
 */
export async function withDiskUseNow(containers: ActualContainer[], runtime: () => Promise<Runtime>): Promise<ActualContainer[]> {
  if (!containers.some((c) => c.disk)) return containers;
  const rt = await runtime();
  if (!rt.diskUsage) return containers;
  return Promise.all(
    containers.map(async (c) => {
      if (!c.disk) return c;
      const disk = await rt.diskUsage!(c).catch(() => undefined);
      if (!disk) return c;
      return { ...c, disk, limits: c.process.state === 'running' ? { ...c.limits, diskBytes: disk.sizeBytes } : c.limits };
    }),
  );
}

/**
 * The plan of `acetate plan -f DIR` as the `acetate run` of this state dir makes it (controller/
 * view-plan.ts, cli/loop-planner.ts); undefined when it does not (no loop, another build, not its
 * directory, an image to resolve, ...): the caller plans itself.
 */
export async function askLoopToPlan(runDir: string | undefined, stateDir: string, ask: PlanAsk): Promise<{ made?: PlanMade; silent: boolean }> {
  const { answer: body, silent } = await askOwn<PlanAnswer>(runDir, stateDir, PLAN_PATH, JSON.stringify(ask));
  return { silent, ...(body ? { made: planMadeOf(body) } : {}) };
}

/** The plan of a well-formed answer; undefined for any other. */
function planMadeOf(body: Partial<PlanAnswer>): PlanMade | undefined {
  if (!Array.isArray(body.problems) || !Array.isArray(body.warnings)) return undefined;
  const p = body.plan;
  if (!p || !Array.isArray(p.actions) || !Array.isArray(p.unchanged) || !Array.isArray(p.skipped) || !Array.isArray(p.held) || !Array.isArray(p.requeue))
    return undefined;
  return { plan: p, problems: body.problems, warnings: body.warnings, ...(body.incompleteReason ? { incompleteReason: body.incompleteReason } : {}) };
}

/**
 * The loop's JSON answer to a GET (or a POST of `body`), when it is this build's for this state
 * dir; none for anything else (no loop, no answer in time, not JSON, another build or dir).
 * `silent`: a socket is there and no answer came (a stopped loop): asking it again is waiting again.
 */
async function askOwn<T extends { build: string; stateDir: string }>(
  runDir: string | undefined,
  stateDir: string,
  urlPath: string,
  body?: string,
): Promise<{ answer?: Partial<T>; silent: boolean }> {
  const socketPath = await rootSocket(runDir);
  if (!socketPath) return { silent: false };
  let text: string | undefined;
  try {
    text = await request(socketPath, urlPath, ANSWER_TIMEOUT_MS, body);
  } catch {
    return { silent: true };
  }
  if (text === undefined) return { silent: false };
  let answer: Partial<T>;
  try {
    answer = JSON.parse(text) as Partial<T>;
  } catch {
    return { silent: false };
  }
  return { silent: false, ...(answer?.build === buildStamp() && answer.stateDir === path.resolve(stateDir) ? { answer } : {}) };
}

/** The loop's socket in `runDir`, when it is one and root's (a run dir given by a flag may be a shared one). */
async function rootSocket(runDir: string | undefined): Promise<string | undefined> {
  if (!runDir) return undefined;
  const socketPath = viewSocketPath(runDir);
  try {
    const st = await lstat(socketPath);
    return st.isSocket() && st.uid === 0 ? socketPath : undefined;
  } catch {
    return undefined; // no loop has served here
  }
}

/** The body of a 200 answer; undefined for any other status. With `body`, a POST of it (JSON). */
function request(socketPath: string, urlPath: string, timeoutMs: number, body?: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    // createConnection and no agent: http's agent would work out a TLS server name for the
    // request (net.isIP's first call compiles a large regex: 15 ms of a 250 ms `get`).
    // Without an agent, http.get's `timeout` is never armed on the socket: the socket's own idle
    // timeout is (a stopped loop's socket accepts the connection and never answers).
    const createConnection = () =>
      net.connect(socketPath).setTimeout(timeoutMs, () => req.destroy(new Error(`the loop did not answer within ${timeoutMs} ms`)));
    const headers = {
      [BUILD_HEADER]: buildStamp(),
      ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
    };
    const req = http.request({ createConnection, path: urlPath, method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(undefined);
        return;
      }
      const length = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(length) || length > MAX_ANSWER_BYTES) {
        req.destroy(new Error(`the loop's answer has no length, or one over ${MAX_ANSWER_BYTES} bytes`));
        return;
      }
      // One buffer of the announced size, filled as the answer comes (no copy per chunk).
      const body = Buffer.allocUnsafe(length);
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size + c.length > length) {
          req.destroy(new Error('the loop answered more than it announced'));
          return;
        }
        c.copy(body, size);
        size += c.length;
      });
      res.on('end', () => (size === length ? resolve(body.toString('utf8')) : reject(new Error('the loop answered less than it announced'))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
