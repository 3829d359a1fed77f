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

export async function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplySummary> {
  const summary: ApplySummary = { results: [], errors: [] };
  await pLimit(Math.max(1, opts.concurrency)).map(groupByKey(plan.actions), async (group) => {
    for (const action of group) {
      opts.onStart?.(action);
      try {
        const result = await executeAction(action, { runtime: opts.runtime });
        summary.results.push(result);
        opts.onDone?.(action, result);
      } catch (err) {
        const e = err instanceof ActionError ? err : new ActionError(action.key, action.kind, { cause: err });
        summary.errors.push(e);
        opts.onError?.(action, e);
        return; // later actions of this key depend on this one
      }
    }
  });
  return summary;
}
