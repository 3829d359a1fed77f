/** What the loop (controller/loop.ts) is made of and tuned with. */
import type { Runtime } from '../runtime/runtime.js';
import type { DesiredSource } from '../contracts/source.js';
import type { EventRecorder, StatusSink } from '../contracts/sinks.js';
import type { BackoffOptions } from '../util/backoff.js';
import type { Clock } from '../contracts/clock.js';
import type { Logger } from '../contracts/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { CrashLoopOptions } from './crashloop.js';
import type { StatusStore } from './status-store.js';
import type { PlanFn } from './reconcile.js';
import type { ExecuteFn } from './run-actions.js';
import type { ObservedContainers } from './observed.js';

export interface ControllerOptions {
  runtime: Runtime;
  sources: DesiredSource[];
  /** plan() from src/plan/plan.ts (injected so the loop can be tested with fakes). */
  plan: PlanFn;
  /** executeAction() from src/apply/execute.ts. */
  execute: ExecuteFn;
  clock?: Clock;
  /** Keys reconciled at once. Default 4. */
  concurrency?: number;
  /** Full resync period of actual state; 0 disables. Default 5 min (DEFAULT_RESYNC_MS). */
  resyncMs?: number;
  /**
   * Period of a light poll of process states that enqueues only the keys whose process changed
   * (exited, vanished, appeared, lost its supervisor), so a change is noticed within this period
   * rather than at the next full resync. With a runtime that reports exits as events
   * (watchProcesses) it is a signal-0 sweep plus a relist of bridge containers only; without, a
   * relist of every container (runtime.list). 0 disables. Default 2 s.
   */
  processPollMs?: number;
  /** Error backoff per key. Default 1 s doubling to 5 min. */
  backoff?: BackoffOptions;
  /** Crash-loop restart backoff. Default 10 s doubling to 5 min, reset after 10 min running. */
  crashLoop?: CrashLoopOptions;
  /** Retry period of a resize the kernel deferred. Default 15 s. */
  deferredRetryMs?: number;
  statusSinks?: StatusSink[];
  recorders?: EventRecorder[];
  /** Seeds previous statuses and crash-loop streaks, and receives source problems. */
  statusStore?: StatusStore;
  logger?: Logger;
  metrics?: Metrics;
  /** Reported in status.node. Default: the host name. */
  nodeName?: string;
  /** Probe checks starting at once across all containers, shared fairly (see probes/fair-limiter.ts). Default 8. */
  probeConcurrency?: number;
  /** How long a registry's answer for an image name (imagePullPolicy Always) is reused. Default 10 s. */
  imageResolveCacheMs?: number;
  /** Called once, when ready() first turns true (systemd's READY=1 is sent from here). */
  onReady?: () => void;
  /** Fed with every container the loop reads, whole from ready() on (served to get and plan: view-socket.ts). */
  observed?: ObservedContainers;
}
