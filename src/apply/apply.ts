/**
 * Carries out a whole plan: the actions of one key in order, different keys concurrently
 * (up to `concurrency`). A failing key does not stop the others.
 */
import pLimit from 'p-limit';
import type { Action } from '../plan/actions.js';
import type { Plan } from '../plan/plan.js';
import type { Runtime } from '../runtime/runtime.js';
import { ActionError } from './errors.js';
import { executeAction, type ActionResult } from './execute.js';

export interface ApplyProgress {
  onStart?(action: Action): void;
  onDone?(action: Action, result: ActionResult): void;
  onError?(action: Action, error: ActionError): void;
}

export interface ApplyOptions extends ApplyProgress {
  runtime: Runtime;
  concurrency: number;
}

export interface ApplySummary {
  results: ActionResult[];
  errors: ActionError[];
}

export function groupByKey(actions: Action[]): Action[][] {
  const groups = new Map<string, Action[]>();
  for (const a of actions) groups.set(a.key, [...(groups.get(a.key) ?? []), a]);
  return [...groups.values()];
}

/**
 * The actions that free host ports (releasesPorts) first, all of them, then the rest: a port that
 * moves between containers of the plan is free when claimed. A key whose release failed does
 * nothing more.
 */
export async function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplySummary> {
  const summary: ApplySummary = { results: [], errors: [] };
  const failed = new Set<string>();
  await runGroups(groupByKey(plan.actions.filter((a) => a.releasesPorts)), opts, summary, failed);
  await runGroups(groupByKey(plan.actions.filter((a) => !a.releasesPorts && !failed.has(a.key))), opts, summary, failed);
  return summary;
}

async function runGroups(groups: Action[][], opts: ApplyOptions, summary: ApplySummary, failed: Set<string>): Promise<void> {
  await pLimit(Math.max(1, opts.concurrency)).map(groups, async (group) => {
    for (const action of group) {
      opts.onStart?.(action);
      try {
        const result = await executeAction(action, { runtime: opts.runtime });
        summary.results.push(result);
        opts.onDone?.(action, result);
      } catch (err) {
        const e = err instanceof ActionError ? err : new ActionError(action.key, action.kind, { cause: err });
        summary.errors.push(e);
        failed.add(action.key);
        opts.onError?.(action, e);
        return; // later actions of this key depend on this one
      }
    }
  });
}
