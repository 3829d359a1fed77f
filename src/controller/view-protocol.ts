/**
 * What `acetate run` answers on its view socket (controller/view-socket.ts) and `acetate get` /
 * `acetate plan` read (cli/loop-view.ts): shared by the two sides, so neither imports the other.
 */
import path from 'node:path';
import type { ActualContainer, NodeNetworkFacts, ResourceGranularity, UserNamespaceFacts } from '../runtime/runtime.js';
import type { StatusRecord } from '../contracts/status-record.js';
import type { SourceProblem } from '../contracts/source.js';
import type { Plan } from '../plan/plan.js';
import type { ContainerRow } from './container-rows.js';

export const VIEW_SOCKET = 'loop.sock';
export const VIEW_PATH = '/v1/observed';
/** POST: the loop plans `acetate plan -f DIR` itself (view-plan.ts), when DIR is its own file source. */
export const PLAN_PATH = '/v1/plan';
/** The asker's build (util/build-stamp.ts): another build's shapes are not read, the node is. */
export const BUILD_HEADER = 'x-acetate-build';

export function viewSocketPath(runDir: string): string {
  return path.join(runDir, VIEW_SOCKET);
}

/**
 * What the asker reads: plan weighs crash-loop back-offs and probe verdicts; get -o wide|json|yaml
 * shows objects and status; get's plain table only its rows (container-rows.ts).
 */
export type Purpose = 'get' | 'table' | 'plan';

export function purposeOf(query: string | null): Purpose {
  return query === 'plan' || query === 'table' ? query : 'get';
}

/** A record as plan reads it (controller/crashloop.ts backoffFacts, probes/unhealthy.ts unhealthyFacts). */
export type PlanRecord = Pick<StatusRecord, 'key' | 'incarnation' | 'crashLoop' | 'unhealthy'>;
/** A record as get reads it: describe's recent actions are left out, and the summaries of what exists. */
export type GetRecord = Omit<StatusRecord, 'recentActions' | 'updatedAt'>;

/**
 * GET /v1/observed?for=get|table|plan. For `table`, containers are the rows of the containers
 * and records the rows of those that wait to be created (shown only when named).
 */
export interface ObservedAnswer<C = ActualContainer | ContainerRow, R = GetRecord | PlanRecord | ContainerRow> {
  build: string;
  /** The state dir the loop serves: an asker of another one (a run dir given twice) reads its own node. */
  stateDir: string;
  containers: C[];
  records: R[];
}

/**
 * A record as far as the asker reads it (the rest was half of the answer at 2,500 containers):
 * plan reads crashLoop and unhealthy, of records that have them; get reads the status, errors,
 * problems and source, and the desired/actual summaries only of a container that does not exist
 * (its waiting row, isOfIncarnation). recentActions are describe's, which reads the files.
 */
export function recordFor(r: StatusRecord, purpose: 'plan', hasContainer: boolean): PlanRecord | undefined;
export function recordFor(r: StatusRecord, purpose: 'get', hasContainer: boolean): GetRecord;
export function recordFor(r: StatusRecord, purpose: 'get' | 'plan', hasContainer: boolean): GetRecord | PlanRecord | undefined;
export function recordFor(r: StatusRecord, purpose: 'get' | 'plan', hasContainer: boolean): GetRecord | PlanRecord | undefined {
  if (purpose === 'plan') {
    if (!r.crashLoop && !r.unhealthy) return undefined;
    return { key: r.key, incarnation: r.incarnation, crashLoop: r.crashLoop, unhealthy: r.unhealthy };
  }
  const { recentActions: _a, updatedAt: _u, ...shown } = r;
  if (!hasContainer) return shown;
  const { desired: _d, actual: _x, ...withContainer } = shown;
  return withContainer;
}

/**
 * What `acetate plan -f DIR` asks the loop to plan (the body of POST /v1/plan). The loop plans
 * only when it would read the same manifests the same way (DIR is its file source, the same
 * --allow-empty, the same fingerprint); the facts are the asker's own (its flags'), so the plan is
 * the one the asker would make with the loop's view of the containers.
 */
export interface PlanAsk {
  /** DIR, resolved (path.resolve), as the file source names its root. */
  dir: string;
  /** Which tree the asker sees DIR in (util/tree-identity.ts): the loop plans only when it sees the same. */
  seenAs: string;
  allowEmpty: boolean;
  /** manifestFingerprint of the asker's node name, capacity, security levels and ACETATE_* variables (those that can change a manifest's reading). */
  fingerprint: string;
  granularity?: ResourceGranularity;
  network?: NodeNetworkFacts;
  userNamespaces?: UserNamespaceFacts;
}

/** The plan the loop made for an asker, and what the manifests' reading reported. */
export interface PlanMade {
  plan: Plan;
  warnings: SourceProblem[];
  problems: SourceProblem[];
  incompleteReason?: string;
}

/** POST /v1/plan's answer: 200 with this, or 503 with why the loop did not plan (the asker plans). */
export interface PlanAnswer extends PlanMade {
  build: string;
  stateDir: string;
}
