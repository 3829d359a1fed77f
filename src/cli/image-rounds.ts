/**
 * Image resolution beside planning, for `plan` and `apply`: every container's image is asked for
 * at once (images/pin.ts); what answers within RESOLVE_WAIT_MS (a local name, a registry that
 * answers) is planned in the first round with everything else, and a container whose registry is
 * slow is left alone in that round (ImageResolving) and planned on its own as soon as its answer
 * comes (a late round). A slow registry so delays its own containers only; `plan` prints both
 * rounds, `apply` carries out each as it comes: the same plan.
 */
import type { DesiredContainer } from '../api/types.js';
import type { SourceProblem } from '../contracts/source.js';
import type { ImagePullError } from '../images/errors.js';
import { pinImage, type PinResult } from '../images/pin.js';
import type { ImageResolver } from '../images/resolver.js';
import type { ActualContainer, NodeNetworkFacts } from '../runtime/runtime.js';
import type { Plan, PlanInput } from '../plan/plan.js';
import { renderPlanLines } from '../plan/render.js';
import { MAX_ERROR_CHARS, terminalText } from '../util/terminal-text.js';
import { RESOLVE_WAIT_MS } from '../controller/image-resolving.js';

export interface FirstRound {
  /** The desired containers pinned to a digest (or needing none). */
  desired: Map<string, DesiredContainer>;
  /** Left alone in the first round, and why (a pull failure; a registry still answering). */
  held: Map<string, string>;
  /** Pull failures, reported as problems of the manifest's image field. */
  problems: SourceProblem[];
  /** The same failures, by key (what `get` shows a waiting container with). */
  errors: Map<string, ImagePullError>;
  /** Containers whose registry had not answered: their late round. */
  pending: Map<string, Promise<PinResult>>;
}

/** Resolves every container's image, waiting at most `waitMs` for the slow ones. */
export async function firstRound(
  containers: Map<string, DesiredContainer>,
  actual: Map<string, ActualContainer>,
  resolver: ImageResolver,
  waitMs = RESOLVE_WAIT_MS,
): Promise<FirstRound> {
  const settled = new Map<string, PinResult>();
  const all = [...containers].map(([key, d]) =>
    pinImage(d, actual.get(key), resolver).then((r) => {
      settled.set(key, r);
      return r;
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(all), new Promise<void>((r) => (timer = setTimeout(r, waitMs).unref()))]);
  clearTimeout(timer);
  const out: FirstRound = { desired: new Map(), held: new Map(), problems: [], errors: new Map(), pending: new Map() };
  [...containers.keys()].forEach((key, i) => {
    const r = settled.get(key);
    if (!r) {
      const d = containers.get(key)!;
      out.held.set(key, `ImageResolving: container ${d.name} waits for the registry to say which digest ${d.spec.image?.ref} names; planned when it answers`);
      out.pending.set(key, all[i]!);
      return;
    }
    if (r.desired) out.desired.set(key, r.desired);
    if (r.held) out.held.set(key, r.held);
    if (r.error) {
      out.problems.push(pullProblem(containers.get(key)!, r.error, !!r.held));
      out.errors.set(key, r.error);
    }
  });
  return out;
}

/** A pull failure as a problem of the manifest's image field: it is the container that waits. */
export function pullProblem(d: DesiredContainer, err: ImagePullError, held: boolean): SourceProblem {
  const src = d.source;
  return {
    origin: src.kind === 'file' ? src.file : d.key,
    ...(src.kind === 'file' ? { line: src.line } : {}),
    field: 'spec.image',
    message: held
      ? `container ${d.name} waits (${err.reason}): ${err.message}; it is left as it is`
      : `${err.reason}: ${err.message}; container ${d.name} keeps the digest it runs`,
    keys: [d.key],
    kind: 'invalid',
  };
}

/**
 * The plan input of one container whose image answered late: the first round's facts, with this
 * key alone (nothing else is planned again, nor destroyed). `fresh`: what the runtime says now
 * (apply: the first round may have changed ports).
 */
export function lateInput(first: PlanInput, key: string, r: PinResult, fresh?: { actual?: ActualContainer; network?: NodeNetworkFacts }): PlanInput {
  const actual = fresh ? fresh.actual : first.actual.get(key);
  const network = fresh?.network ?? first.network;
  const { heldKeys: _held, network: _network, ...rest } = first;
  return {
    ...rest,
    desired: r.desired ? new Map([[key, r.desired]]) : new Map(),
    actual: actual ? new Map([[key, actual]]) : new Map(),
    ...(r.held ? { heldKeys: new Map([[key, r.held]]) } : {}),
    ...(network ? { network } : {}),
  };
}

/** Calls `each` for every pending container as its answer comes; resolves when all are done. */
export async function lateRounds(pending: Map<string, Promise<PinResult>>, each: (key: string, r: PinResult) => Promise<void>): Promise<void> {
  await Promise.all([...pending].map(async ([key, p]) => each(key, await p)));
}

/** What a late round prints: the container's plan once its registry answered. */
export function renderLate(key: string, late: Plan, waitedMs: number): string {
  const lines = [`${key}: the registry answered after ${(waitedMs / 1000).toFixed(1)}s:`];
  lines.push(...renderPlanLines(late));
  for (const s of late.skipped) lines.push(`  ! left alone ${s.key}: ${terminalText(s.reason, MAX_ERROR_CHARS)}`);
  if (!late.actions.length && !late.skipped.length) lines.push(`  (no change for ${key})`);
  return lines.join('\n');
}

/** The first plan with the late ones folded in (`plan -o json`, apply's summary): one plan, as the loop would make it. */
export function mergePlans(first: Plan, late: Plan[]): Plan {
  const lateKeys = new Set(late.flatMap((p) => [...p.actions.map((a) => a.key), ...p.unchanged, ...p.skipped.map((s) => s.key), ...p.held.map((h) => h.key)]));
  return {
    ...first,
    actions: [...first.actions, ...late.flatMap((p) => p.actions)],
    unchanged: [...first.unchanged, ...late.flatMap((p) => p.unchanged)],
    skipped: [...first.skipped.filter((s) => !lateKeys.has(s.key)), ...late.flatMap((p) => p.skipped)],
    held: [...first.held, ...late.flatMap((p) => p.held)],
    requeue: [...first.requeue, ...late.flatMap((p) => p.requeue)],
  };
}
