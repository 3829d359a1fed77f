/**
 * The plan's input from what was read, for `plan` and `apply` (converge-input.ts) and for the loop
 * planning `plan` for an asker (loop-planner.ts): one function, so the two cannot weigh different
 * facts for the same manifests and containers.
 */
import type { DesiredContainer } from '../api/types.js';
import type { PlanInput } from '../plan/plan.js';
import type { ActualContainer, NodeNetworkFacts, ResourceGranularity, UserNamespaceFacts } from '../runtime/runtime.js';
import type { PlanRecord } from '../controller/view-protocol.js';
import { backoffFacts } from '../controller/crashloop.js';
import { unhealthyFacts } from '../controller/probes/unhealthy.js';

/** The runtime's facts the plan weighs (Runtime.granularity, networkFacts(), userNamespaceFacts()). */
export interface RuntimeFacts {
  granularity?: ResourceGranularity;
  network?: NodeNetworkFacts;
  userNamespaces?: UserNamespaceFacts;
}

/** The reader of the loop's plan for an asker (unhealthyFacts): no process has pid 0, so no verdict is the reader's own. */
export const FOR_AN_ASKER = 0;

export async function planInputOf(o: {
  desired: Map<string, DesiredContainer>;
  /** Containers held back before planning (an image not resolved), and why. */
  heldKeys?: Map<string, string>;
  snapshot: { protectedKeys: Set<string>; failingOrigins: Set<string>; complete: boolean; incompleteReason?: string };
  actual: Map<string, ActualContainer>;
  /** The status records: crash-loop back-offs and probe verdicts. */
  records: PlanRecord[];
  facts: RuntimeFacts;
  now: number;
  /** Whose plan it is (unhealthyFacts: a loop's verdicts are facts to any other process): this process's pid, or FOR_AN_ASKER. */
  readerPid: number;
}): Promise<PlanInput> {
  const { facts, snapshot } = o;
  return {
    desired: o.desired,
    actual: o.actual,
    ...(o.heldKeys?.size ? { heldKeys: o.heldKeys } : {}),
    protectedKeys: snapshot.protectedKeys,
    failingOrigins: snapshot.failingOrigins,
    complete: snapshot.complete,
    incompleteReason: snapshot.incompleteReason,
    ...(facts.granularity ? { granularity: facts.granularity } : {}),
    ...(facts.network ? { network: facts.network } : {}),
    ...(facts.userNamespaces ? { userNamespaces: facts.userNamespaces } : {}),
    now: o.now,
    restartBackoff: backoffFacts(o.records, o.actual),
    unhealthy: await unhealthyFacts(o.records, o.actual, o.readerPid),
  };
}
