/** Reads desired state (a manifest directory) and actual state (the runtime) for plan and apply. */
import os from 'node:os';
import { loadManifestDir, type DirSnapshot } from '../sources/files/load.js';
import type { ActualContainer, Runtime } from '../runtime/runtime.js';
import { plan, type Plan, type PlanInput } from '../plan/plan.js';
import type { Writable } from 'node:stream';
import { print } from './command.js';
import { printProblems, printWarnings } from './problems.js';
import { detectNodeCapacity } from '../sources/kube/desired.js';
import { pinAll } from '../images/pin.js';
import { ImageResolver } from '../images/resolver.js';
import { readStatusRecords } from '../controller/status-store.js';
import { backoffFacts } from '../controller/crashloop.js';
import { unhealthyFacts } from '../controller/probes/unhealthy.js';

export interface ConvergeInput {
  snapshot: DirSnapshot;
  actual: Map<string, ActualContainer>;
  planInput: PlanInput;
}

export function nodeName(flag?: string): string {
  return flag ?? process.env.NODE_NAME ?? os.hostname();
}

/**
 * Reads everything plan and apply decide on. `stateDir` gives the crash-loop back-off `acetate
 * run` published (read only; honoured only for the exit it is about), so plan shows, and apply
 * takes, the same held starts the loop does; and the failed liveness (or startup) probes it has
 * not acted on yet (honoured only while that loop runs, and only for the process they are
 * about): the same kills.
 */
export async function readConvergeInput(opts: {
  dir: string;
  allowEmpty: boolean;
  node: string;
  runtime: Runtime;
  stateDir: string;
  now?: number;
}): Promise<ConvergeInput> {
  const [snapshot, list, records, network] = await Promise.all([
    loadManifestDir(opts.dir, { allowEmpty: opts.allowEmpty, nodeName: opts.node, capacity: detectNodeCapacity() }),
    opts.runtime.list(),
    readStatusRecords(opts.stateDir),
    opts.runtime.networkFacts?.(),
  ]);
  const actual = new Map(list.map((c) => [c.key, c]));
  // Image digests are facts found before planning (a registry lookup for `Always`); see images/pin.ts.
  const images = opts.runtime.images ? await pinAll(snapshot.containers, actual, new ImageResolver(opts.runtime.images)) : undefined;
  // A pull failure is reported as a problem of the manifest's image field (stderr, exit status 1).
  for (const [key, err] of images?.errors ?? []) {
    const src = snapshot.containers.get(key)?.source;
    const message = images?.held.has(key)
      ? `${images.held.get(key)}; the container is left as it is`
      : `${err.reason}: ${err.message}; the container keeps the digest it runs`;
    snapshot.problems.push({
      origin: src?.kind === 'file' ? src.file : key,
      ...(src?.kind === 'file' ? { line: src.line } : {}),
      field: 'spec.image',
      message,
      keys: [key],
      kind: 'invalid',
    });
  }
  return {
    snapshot,
    actual,
    planInput: {
      desired: images?.desired ?? snapshot.containers,
      actual,
      ...(images?.held.size ? { heldKeys: images.held } : {}),
      protectedKeys: snapshot.protectedKeys,
      failingOrigins: snapshot.failingOrigins,
      complete: snapshot.complete,
      incompleteReason: snapshot.incompleteReason,
      ...(opts.runtime.granularity ? { granularity: opts.runtime.granularity } : {}),
      ...(network ? { network } : {}),
      now: opts.now ?? Date.now(),
      restartBackoff: backoffFacts(records, actual),
      unhealthy: await unhealthyFacts(records, actual),
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

/**
 * What `plan` and `apply` share: read both states, plan, and report the manifests' warnings and
 * problems on stderr, so the two commands cannot show different plans for the same input.
 */
export async function planFromFlags(
  values: { file: string; 'allow-empty'?: boolean; node?: string },
  ctx: { runtime: Runtime; stateDir: string; stderr: Writable },
): Promise<{ input: ConvergeInput; plan: Plan }> {
  const input = await readConvergeInput({
    dir: values.file,
    allowEmpty: !!values['allow-empty'],
    node: nodeName(values.node),
    runtime: ctx.runtime,
    stateDir: ctx.stateDir,
  });
  const p = plan(input.planInput);
  printWarnings(ctx.stderr, input.snapshot.warnings);
  printProblems(ctx.stderr, input.snapshot.problems);
  if (input.snapshot.incompleteReason)
    print(ctx.stderr, `warning: ${input.snapshot.incompleteReason}; nothing will be destroyed (use --allow-empty to allow it)`);
  return { input, plan: p };
}
