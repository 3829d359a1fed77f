/**
 * The actions a plan is made of. A plan is computed without I/O by plan() and carried out by
 * apply; each action carries the reason it was chosen, in words a user reads in `acetate plan`.
 */
import type { DesiredContainer, PublishedPort, Resources } from '../api/types.js';
import type { IdRangeFact } from '../runtime/runtime.js';

interface Base {
  key: string;
  /** Why: "not created yet", "memory 256Mi → 512Mi", "command changed"... */
  reason: string;
  /**
   * It frees host ports and claims none: apply carries out every such action of a plan before the
   * others, so a port that moves between containers of one edit (a swap, a chain, a container
   * destroyed and another created on its port) is free when claimed.
   */
  releasesPorts?: boolean;
}

/** Create the container (private area, record) and, if its desired state is Running, start it. */
export interface CreateAction extends Base {
  kind: 'create';
  desired: DesiredContainer;
  /** hostUsers: false: the range of node ids plan announced (the runtime takes it while it is free). */
  idRange?: IdRangeFact;
}
/** Start the process of an existing container (desired Running, not running). */
export interface StartAction extends Base {
  kind: 'start';
  desired: DesiredContainer;
}
/** Stop the process (desired Stopped, running). */
export interface StopAction extends Base {
  kind: 'stop';
  desired: DesiredContainer;
}
/** Change limits of the running process in place: same pid. */
export interface ResizeAction extends Base {
  kind: 'resize';
  desired: DesiredContainer;
  from: Resources;
  to: Resources;
}
/** A resize whose resizePolicy says RestartContainer: stop, then start with the new limits. */
export interface RestartAction extends Base {
  kind: 'restart';
  desired: DesiredContainer;
  from: Resources;
  to: Resources;
}
/**
 * Fields that cannot change in place changed: stop, remove and create again. The private area is
 * kept unless the template changed (discardPrivateArea).
 */
export interface ReplaceAction extends Base {
  kind: 'replace';
  desired: DesiredContainer;
  fields: string[];
  discardPrivateArea: boolean;
  /** The new range of node ids plan announced, when the user namespace changes (see CreateAction). */
  idRange?: IdRangeFact;
}
/** Only fields that need no runtime action changed (restartPolicy, grace period...): record them. */
export interface ConfigureAction extends Base {
  kind: 'configure';
  desired: DesiredContainer;
  fields: string[];
}
/**
 * Published ports changed on a running bridge container: port rules replaced, same namespace and
 * pid. A change that drops ports and adds others is two of these: first the release (`to` is
 * what it keeps, `releasesPorts`), then the claim.
 */
export interface PortsAction extends Base {
  kind: 'ports';
  desired: DesiredContainer;
  from: PublishedPort[];
  to: PublishedPort[];
}
/** The network of a running bridge container is broken (a veth or rule deleted by hand): rebuilt in place, same address. */
export interface NetworkRepairAction extends Base {
  kind: 'network';
  desired: DesiredContainer;
}
/**
 * A liveness (or startup) probe failed for this very process (plan/probe-kill.ts): kill it as if
 * it crashed (SIGTERM, the grace period, SIGKILL) and leave it exited, so that restartPolicy and
 * the crash-loop back-off decide its restart in the next plan.
 */
export interface KillAction extends Base {
  kind: 'kill';
  desired: DesiredContainer;
  probe: 'liveness' | 'startup';
  /** The process the verdict is about: no other one is killed for it. */
  pid: number;
  /** The probe's words ("Liveness probe failed 3 times: HTTP 500"), the Unhealthy event. */
  message: string;
}
/** A managed container no longer desired: stop it and delete it with its private area. */
export interface DestroyAction extends Base {
  kind: 'destroy';
  graceSeconds: number;
}

export type Action =
  | CreateAction
  | StartAction
  | StopAction
  | ResizeAction
  | RestartAction
  | ReplaceAction
  | ConfigureAction
  | PortsAction
  | NetworkRepairAction
  | KillAction
  | DestroyAction;

export type ActionKind = Action['kind'];

/** What an idempotent operation reports it did. */
export type Outcome =
  | 'unchanged'
  | 'created'
  | 'started'
  | 'stopped'
  | 'resized'
  | 'restarted'
  | 'replaced'
  | 'configured'
  | 'published'
  | 'repaired'
  | 'killed'
  | 'destroyed'
  | 'deferred';
