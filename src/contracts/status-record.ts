/**
 * What the loop publishes about one container: the record `acetate get`/`describe` read from the
 * status store and the Kubernetes status writer turns into `.status`. Shared by the controller
 * (which writes it) and the sinks (which store or send it).
 */
import type { ContainerStatus, SourceRef } from '../api/types.js';
import type { SourceProblem } from './source.js';

/** Why a container that should run is not running (yet): CrashLoopBackOff, ImagePullBackOff... */
export interface Waiting {
  reason: 'CrashLoopBackOff' | 'RestartPolicy' | string;
  message: string;
  /** ContainerCreating while its image is pulled: the image's digest (describe shows the pull's progress). */
  pulling?: string;
}

/** The network of a container in words (`acetate get`, status.ip). */
export interface NetworkSummary {
  mode: string;
  ip?: string;
  /** "127.0.0.1:8080→80/TCP, ..." or "none". */
  ports: string;
  /** The persistent network namespace (`nsenter --net=PATH`). */
  netns?: string;
  problem?: string;
}

export interface RecordedAction {
  kind: string;
  /** Outcome, or "error". */
  outcome: string;
  reason?: string;
  durationMs?: number;
  time: string;
  error?: string;
}

/**
 * The crash-loop bookkeeping of a container (controller/crashloop.ts), published so that
 * `acetate plan` weighs the same back-off as the loop and a restarted loop goes on counting.
 */
export interface CrashLoopRecord {
  /** Consecutive exits counted. */
  streak: number;
  /** The container (AppliedRecord.createdAt) the streak is of. */
  incarnation?: string;
  /** The exit counted last (plan/restart.ts exitIdentity). */
  exitId?: string;
  /** When the restart after that exit is due (ISO); absent once it was restarted. */
  restartAt?: string;
  /** The back-off of this streak (ms). */
  delayMs?: number;
  /** When the loop last started the process (ISO). */
  lastStartAt?: string;
}

/**
 * A liveness (or startup) probe failed for the running process (controller/probes/): the loop's
 * plan kills it. Published so that `acetate plan` shows that kill while the loop has not made it.
 * A verdict is a fact only while the prober that made it lives: readers honour it only while
 * `by` runs (controller/probes/unhealthy.ts), and only for the probe as declared now (probeHash).
 */
export interface UnhealthyRecord {
  kind: 'liveness' | 'startup';
  pid: number;
  /** The process's start time: with the pid, which process the verdict is about. */
  startedAt?: string;
  message: string;
  /** hashOf the probe that failed (plan/probe-kill.ts probeHash). */
  probeHash: string;
  /** The process whose prober made the verdict (the status store's writer signs it). */
  by?: { pid: number; startTicks: number };
}

export interface StatusRecord {
  key: string;
  namespace: string;
  name: string;
  /**
   * The container this status is of: its creation time (AppliedRecord.createdAt). A container
   * destroyed and created again under the same name is another one: readers ignore a record of an
   * earlier incarnation (see isOfIncarnation).
   */
  incarnation?: string;
  status: ContainerStatus;
  /** Where the container is declared (or was, when it was last applied). */
  source?: SourceRef;
  /** The desired spec in user units, when the container is desired. */
  desired?: {
    state: string;
    template: string;
    command: string[];
    restartPolicy: string;
    resources: { cpu?: string; memory?: string; pids?: number; disk?: string };
  };
  /** What runs on the node. */
  actual?: {
    id: string;
    state: string;
    pid?: number;
    exitCode?: number;
    /** Why the last run ended beyond its code (OOMKilled). */
    reason?: string;
    /** The process runs (or ended) without its supervisor: what happened. */
    unsupervised?: string;
    startedAt?: string;
    finishedAt?: string;
    restartCount: number;
    limits: { cpu?: string; memory?: string; pids?: number; disk?: string };
    applied: { state: string; resources: { cpu?: string; memory?: string; pids?: number; disk?: string } };
    /** The private area's filesystem (resources.disk): statfs bytes used and total, the image size, and what the files use of it. */
    disk?: { usedBytes: number; totalBytes: number; sizeBytes: number; filesBytes?: number };
    network?: NetworkSummary;
    /** The node ids its root is: `1000065536-1000131071` (its own range), or `node` (hostUsers: true). */
    ids?: string;
  };
  lastError?: {
    message: string;
    action?: string;
    retry: 'backoff' | 'terminal';
    time: string;
    /** Consecutive failures. */
    failures?: number;
    nextRetryAt?: string;
  };
  waiting?: Waiting;
  /** Crash-loop back-off of the last exits, while there is a streak. */
  crashLoop?: CrashLoopRecord;
  /** A failed liveness (or startup) probe of the running process, not yet acted on. */
  unhealthy?: UnhealthyRecord;
  problems: SourceProblem[];
  recentActions: RecordedAction[];
  updatedAt: string;
}
