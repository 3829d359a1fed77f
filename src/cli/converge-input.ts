/** Reads desired state (a manifest directory) and actual state (the runtime) for plan and apply. */
import os from 'node:os';
import { loadManifestDir, type DirSnapshot } from '../sources/files/load.js';
import type { ActualContainer, Runtime } from '../runtime/runtime.js';
import type { PlanInput } from '../plan/plan.js';
import { detectNodeCapacity } from '../sources/kube/desired.js';

export interface ConvergeInput {
  snapshot: DirSnapshot;
  actual: Map<string, ActualContainer>;
  planInput: PlanInput;
}

export function nodeName(flag?: string): string {
  return flag ?? process.env.NODE_NAME ?? os.hostname();
}

export async function readConvergeInput(opts: { dir: string; allowEmpty: boolean; node: string; runtime: Runtime }): Promise<ConvergeInput> {
  const [snapshot, list] = await Promise.all([
    loadManifestDir(opts.dir, { allowEmpty: opts.allowEmpty, nodeName: opts.node, capacity: detectNodeCapacity() }),
    opts.runtime.list(),
  ]);
  const actual = new Map(list.map((c) => [c.key, c]));
  return {
    snapshot,
    actual,
    planInput: {
      desired: snapshot.containers,
      actual,
      protectedKeys: snapshot.protectedKeys,
      failingOrigins: snapshot.failingOrigins,
      complete: snapshot.complete,
      incompleteReason: snapshot.incompleteReason,
    },
  };
}

/** The command line of this process, as the node lock shows it to another one. */
export function commandLine(): string {
  return ['acetate', ...process.argv.slice(2)].join(' ');
}

export const CONVERGE_OPTIONS = {
  file: { type: 'string', short: 'f' },
  'allow-empty': { type: 'boolean' },
  node: { type: 'string' },
} as const;
