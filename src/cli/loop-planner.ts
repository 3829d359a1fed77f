/**
 * `acetate run` planning `acetate plan -f DIR` for the asker (controller/view-plan.ts), when DIR
 * is its own one source: the manifests it watches, as they are now, and the containers as it last
 * read them, through the very functions `plan` uses (plan-input.ts, plan/plan.ts). A no-op `plan`
 * at 2,500 containers was ~250 ms of the asker's CPU, reading 2,500 manifests' stats and cache
 * and the loop's answer into a fresh heap; here it is a stat per file and directory when nothing
 * changed (FileSource.readForAsker, sources/files/tree-stamps.ts) and a plan.
 *
 * It declines (the asker then plans itself, as before) whenever the answer could differ from the
 * asker's own: another directory; the same name seen from another mount or network namespace or
 * root (util/tree-identity.ts); another --allow-empty; another node name, capacity, security
 * levels or ACETATE_* variables (the manifest fingerprint); a symlink in the tree; a container
 * with an image (digests are resolved by the asker, with its registry rounds: cli/image-rounds.ts).
 * The manifests are taken as `plan` reads them (FileSource.readForAsker), not with the loop's
 * memory of what a failing file declared before, and that reading is never what the loop acts on.
 */
import type { DesiredContainer } from '../api/types.js';
import { isDeclined, type Declined, type Planner } from '../controller/view-plan.js';
import type { PlanAsk, PlanMade, PlanRecord } from '../controller/view-protocol.js';
import { recordFor } from '../controller/view-protocol.js';
import type { StatusRecord } from '../contracts/status-record.js';
import type { ActualContainer } from '../runtime/runtime.js';
import type { FileSource } from '../sources/files/watch.js';
import type { Clock } from '../contracts/clock.js';
import { plan } from '../plan/plan.js';
import { FOR_AN_ASKER, planInputOf } from './plan-input.js';
import { messageOf } from '../contracts/errors.js';
import { treeIdentity } from '../util/tree-identity.js';

export interface LoopPlannerDeps {
  /** The loop's one source. */
  source: Pick<FileSource, 'root' | 'readForAsker' | 'snapshot'>;
  allowEmpty: boolean;
  /** manifestFingerprint of the loop's node name and capacity (and this process's ACETATE_* variables). */
  fingerprint: string;
  /** The containers as the loop last read them; undefined while that view is not whole. */
  containers(): ActualContainer[] | undefined;
  records(): StatusRecord[];
  clock: Pick<Clock, 'now'>;
  /** Told of each answer (the loop's acetate_plans_for_askers_total), with why when not planned. */
  onAnswer?(answer: 'planned' | 'declined' | 'failed', why?: string): void;
}

const DECLINED_FOR_IMAGES: Declined = { declined: "images' digests are resolved by the asker" };

function hasImage(containers: Map<string, DesiredContainer>): boolean {
  for (const c of containers.values()) if (c.spec.image) return true;
  return false;
}

export function loopPlanner(d: LoopPlannerDeps): Planner {
  return async (ask) => {
    try {
      const made = await planFor(ask, d);
      if (isDeclined(made)) d.onAnswer?.('declined', made.declined);
      else d.onAnswer?.('planned');
      return made;
    } catch (err) {
      d.onAnswer?.('failed', messageOf(err));
      throw err;
    }
  };
}

async function planFor(ask: PlanAsk, d: LoopPlannerDeps): Promise<PlanMade | Declined> {
  if (ask.dir !== d.source.root) return { declined: `this loop reads ${d.source.root}, not ${ask.dir}` };
  if (ask.seenAs !== treeIdentity(d.source.root))
    return { declined: 'the asker sees the directory in another mount namespace or root, or another directory under its name' };
  if (ask.allowEmpty !== d.allowEmpty) return { declined: 'another --allow-empty than the loop' };
  if (ask.fingerprint !== d.fingerprint) return { declined: "another node name, capacity, security levels or ACETATE_* variables than the loop's" };
  if (hasImage(d.source.snapshot().containers)) return DECLINED_FOR_IMAGES; // before the read, which may be of thousands
  // The files as they are now (a save a moment ago included), as `plan` reads them: no memory of
  // what a failing file declared before, the same order. What the loop acts on is not touched.
  const snapshot = await d.source.readForAsker();
  if (snapshot === 'has links') return { declined: 'a symlink in the tree may lead elsewhere for the asker (through /proc/self)' };
  if (hasImage(snapshot.containers)) return DECLINED_FOR_IMAGES;
  const list = d.containers();
  if (!list) return { declined: 'the loop has not read every container yet' };
  const actual = new Map(list.map((c) => [c.key, c]));
  // The records as the view gives them to plan (view-protocol.ts recordFor).
  const records = d.records().flatMap((r) => (recordFor(r, 'plan', actual.has(r.key)) as PlanRecord | undefined) ?? []);
  const input = await planInputOf({
    desired: snapshot.containers,
    snapshot,
    actual,
    records,
    facts: { granularity: ask.granularity, network: ask.network, userNamespaces: ask.userNamespaces },
    now: d.clock.now(),
    readerPid: FOR_AN_ASKER, // this loop's probe verdicts are facts to the asker
  });
  return {
    plan: plan(input),
    warnings: snapshot.warnings,
    problems: snapshot.problems,
    ...(snapshot.incompleteReason ? { incompleteReason: snapshot.incompleteReason } : {}),
  };
}
