/**
 * Carries out one planned action against a Runtime and reports what it did. Every action is
 * idempotent: repeated, or finished after an interruption, it converges.
 */
import type { Resources, ResourceName } from '../api/types.js';
import type { Action, ActionKind, Outcome } from '../plan/actions.js';
import type { DeferredResize, Runtime } from '../runtime/runtime.js';
import { appliedRecord as record } from '../runtime/applied-record.js';
import { ActionError } from './errors.js';

export interface ActionResult {
  key: string;
  kind: ActionKind;
  outcome: Outcome;
  durationMs: number;
  pid?: number;
  deferred?: DeferredResize[];
  limits?: Resources;
  exitCode?: number;
}

export interface ExecuteContext {
  runtime: Runtime;
  now?: () => number;
}

const FIELD: Record<ResourceName, keyof Resources> = { cpu: 'cpuMillis', memory: 'memoryBytes', pids: 'pids', disk: 'diskBytes' };

async function createdAtOf(ctx: ExecuteContext, key: string): Promise<string> {
  return (await ctx.runtime.get(key))?.applied.createdAt ?? new Date().toISOString();
}

async function run(action: Action, ctx: ExecuteContext): Promise<Omit<ActionResult, 'key' | 'kind' | 'durationMs'>> {
  const rt = ctx.runtime;
  const key = action.key;
  switch (action.kind) {
    case 'create': {
      const d = action.desired;
      await rt.create({ namespace: d.namespace, name: d.name, spec: d.spec, source: d.source, ...(action.idRange ? { idRange: action.idRange } : {}) });
      if (d.spec.state !== 'Running') return { outcome: 'created' };
      const { pid } = await rt.start(key);
      return { outcome: 'created', pid };
    }
    case 'start': {
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key)));
      const { pid } = await rt.start(key);
      return { outcome: 'started', pid };
    }
    case 'stop': {
      const { exitCode } = await rt.stop(key, { graceSeconds: action.desired.spec.terminationGracePeriodSeconds });
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key)));
      return { outcome: 'stopped', exitCode };
    }
    case 'resize': {
      const res = await rt.updateResources(key, action.to);
      // What is now in force: the new value, except for resources the kernel refused.
      const inForce: Resources = { ...action.to };
      for (const d of res.deferred) {
        const f = FIELD[d.resource];
        if (action.from[f] === undefined) delete inForce[f];
        else inForce[f] = action.from[f];
      }
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key), inForce));
      return { outcome: res.deferred.length ? 'deferred' : 'resized', limits: res.limits, deferred: res.deferred };
    }
    case 'restart': {
      const grace = action.desired.spec.terminationGracePeriodSeconds;
      await rt.stop(key, { graceSeconds: grace });
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key)));
      const { pid } = await rt.start(key);
      return { outcome: 'restarted', pid };
    }
    case 'replace': {
      const d = action.desired;
      const req = { namespace: d.namespace, name: d.name, spec: d.spec, source: d.source, ...(action.idRange ? { idRange: action.idRange } : {}) };
      // One use of the new image from the check to the create: between them no container names
      // it yet, and an `image prune --all` would remove it, after the old container is gone.
      const asUser = <T>(fn: () => Promise<T>): Promise<T> => (rt.withImageUse ? rt.withImageUse(req, fn) : fn());
      await asUser(async () => {
        // Refuse before touching the old container: a spec that cannot be created must not cost it.
        await rt.check(req);
        const current = await rt.get(key);
        await rt.stop(key, { graceSeconds: current?.applied.spec.terminationGracePeriodSeconds ?? d.spec.terminationGracePeriodSeconds });
        await rt.remove(key, { keepPrivateArea: !action.discardPrivateArea, keepLog: true });
        await rt.create(req);
      });
      if (d.spec.state !== 'Running') return { outcome: 'replaced' };
      const { pid } = await rt.start(key);
      return { outcome: 'replaced', pid };
    }
    case 'ports':
    case 'network': {
      // The record first: the driver publishes the record's ports. Should this fail, the plan
      // still sees the ports in force (read from the network) differ, and it is tried again.
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key)));
      await rt.updateNetwork(key, { repair: action.kind === 'network' });
      return { outcome: action.kind === 'ports' ? 'published' : 'repaired' };
    }
    case 'configure': {
      await rt.recordApplied(key, record(action.desired, await createdAtOf(ctx, key)));
      return { outcome: 'configured' };
    }
    case 'kill': {
      // Only the process the probe condemned; left exited, as a crash: the next plan restarts it.
      const p = (await rt.get(key))?.process;
      if (p?.state !== 'running' || p.pid !== action.pid) return { outcome: 'unchanged' };
      const { exitCode } = await rt.stop(key, { graceSeconds: action.desired.spec.terminationGracePeriodSeconds, leaveExited: true });
      return { outcome: 'killed', exitCode };
    }
    case 'destroy': {
      await rt.stop(key, { graceSeconds: action.graceSeconds });
      await rt.remove(key, { keepPrivateArea: false });
      return { outcome: 'destroyed' };
    }
  }
}

export async function executeAction(action: Action, ctx: ExecuteContext): Promise<ActionResult> {
  const now = ctx.now ?? (() => performance.now());
  const t0 = now();
  try {
    const r = await run(action, ctx);
    return { key: action.key, kind: action.kind, durationMs: Math.round(now() - t0), ...r };
  } catch (err) {
    throw new ActionError(action.key, action.kind, { cause: err });
  }
}
