/**
 * POST /v1/plan on the loop's view socket (view-socket.ts): the loop plans `acetate plan -f DIR`
 * for the asker, when DIR is its own file source. The asker then starts Node, asks, and prints:
 * it reads no manifest, no manifest cache and no container (at 2,500 containers that was ~250 ms
 * of its CPU, the whole of a no-op `plan`'s budget); the loop looks at the directory's stamps
 * first, and reads it again for the asker when they changed, so the plan is of the files as they
 * are now.
 *
 * What decides is the planner the loop was given (cli/loop-planner.ts): it answers the plan, or
 * why it did not plan (503: the asker plans itself, as it always could).
 */
import type http from 'node:http';
import { messageOf } from '../contracts/errors.js';
import type { PlanAnswer, PlanAsk, PlanMade } from './view-protocol.js';

/** An ask is a directory, a flag, a fingerprint and the node's facts (the network's holders are keys): well under this. */
const MAX_ASK_BYTES = 4 * 2 ** 20;

/** Why the loop did not plan (answered 503: the asker plans itself). */
export interface Declined {
  declined: string;
}

export function isDeclined(a: PlanMade | Declined): a is Declined {
  return 'declined' in a;
}

/** The loop's planner: the plan, or why not. */
export type Planner = (ask: PlanAsk) => Promise<PlanMade | Declined>;

export interface PlanReply {
  code: number;
  type: string;
  body: string;
}

/** Reads the ask, plans through `planner`, and says what to answer. Never throws. */
export async function answerPlanAsk(req: http.IncomingMessage, planner: Planner | undefined, head: { build: string; stateDir: string }): Promise<PlanReply> {
  const text = (body: string, code = 503): PlanReply => ({ code, type: 'text/plain; charset=utf-8', body: `${body}\n` });
  if (!planner) {
    req.resume();
    return text('this loop does not plan for askers (it has no file source, or more than one source)');
  }
  let ask: PlanAsk;
  try {
    ask = parseAsk(await readBody(req));
  } catch (err) {
    return text(messageOf(err), 400);
  }
  try {
    const made = await planner(ask);
    if (isDeclined(made)) return text(made.declined);
    const answer: PlanAnswer = { ...head, ...made };
    return { code: 200, type: 'application/json', body: JSON.stringify(answer) };
  } catch (err) {
    return text(`cannot plan: ${messageOf(err)}`, 500);
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_ASK_BYTES) {
        req.destroy();
        reject(new Error(`an ask over ${MAX_ASK_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The ask's shape (the asker is root on this node, and this build: checked, not trusted to be well-formed). */
function parseAsk(body: string): PlanAsk {
  const a = JSON.parse(body) as Partial<PlanAsk> | null;
  if (typeof a !== 'object' || a === null) throw new Error('an ask is a JSON object');
  if (typeof a.dir !== 'string' || typeof a.seenAs !== 'string' || typeof a.allowEmpty !== 'boolean' || typeof a.fingerprint !== 'string')
    throw new Error('an ask names dir, seenAs, allowEmpty and fingerprint');
  for (const k of ['granularity', 'network', 'userNamespaces'] as const)
    if (a[k] !== undefined && (typeof a[k] !== 'object' || a[k] === null)) throw new Error(`${k}: an object`);
  return a as PlanAsk;
}
