/**
 * Asks the `acetate run` of this state dir for its view of the containers (controller/
 * view-socket.ts) instead of reading every container's files: `get` and `plan` at 2,500
 * containers take a fraction of the time, and plan sees what the loop acts on.
 *
 * Any answer but a whole, well-formed one of this very build (no loop, one still in its first
 * sync, another build, a loop that does not answer within the timeout) gives undefined, and the
 * caller reads the node itself, as it always could: this is a shortcut, never a second truth.
 */
import http from 'node:http';
import { lstat } from 'node:fs/promises';
import type { ActualContainer } from '../runtime/runtime.js';
import type { StatusRecord } from '../contracts/status-record.js';
import { VIEW_PATH, viewSocketPath, type ObservedAnswer, type Purpose } from '../controller/view-socket.js';
import { buildStamp } from '../util/build-stamp.js';

/** A loop that does not answer within this is passed by (the node is read instead). */
const ANSWER_TIMEOUT_MS = 3_000;
/** An answer larger than this is not read (2,500 containers are ~10 MiB). */
const MAX_ANSWER_BYTES = 256 * 2 ** 20;

export interface LoopView {
  containers: ActualContainer[];
  records: StatusRecord[];
  /** The loop's pid. */
  pid: number;
}

/** `purpose`: what the records are read for (controller/view-socket.ts recordFor): plan gets only what it weighs. */
export async function askLoop(runDir: string | undefined, purpose: Purpose, opts: { timeoutMs?: number } = {}): Promise<LoopView | undefined> {
  if (!runDir) return undefined;
  const socketPath = viewSocketPath(runDir);
  try {
    if (!(await lstat(socketPath)).isSocket()) return undefined;
  } catch {
    return undefined; // no loop has served here
  }
  const text = await request(socketPath, `${VIEW_PATH}?for=${purpose}`, opts.timeoutMs ?? ANSWER_TIMEOUT_MS).catch(() => undefined);
  if (text === undefined) return undefined;
  let body: Partial<ObservedAnswer>;
  try {
    body = JSON.parse(text) as Partial<ObservedAnswer>;
  } catch {
    return undefined;
  }
  if (body.build !== buildStamp() || !Array.isArray(body.containers) || !Array.isArray(body.records) || typeof body.pid !== 'number') return undefined;
  return { containers: body.containers, records: body.records, pid: body.pid };
}

/** The body of a 200 answer; undefined for any other status. */
function request(socketPath: string, urlPath: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, headers: { 'x-acetate-build': buildStamp() }, timeout: timeoutMs }, (res) => {
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
    req.on('timeout', () => req.destroy(new Error(`the loop did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
