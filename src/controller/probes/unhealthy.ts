/**
 * What the loop does when a liveness (or startup) probe failed: as the kubelet, record the
 * probe's output as an `Unhealthy` event, then kill the process gracefully (SIGTERM, the grace
 * period, SIGKILL) and leave the container exited, so that restartPolicy and the crash-loop
 * back-off decide when it runs again, exactly as for a process that crashed.
 */
import type { ContainerEvent } from '../../contracts/sinks.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { Logger } from '../../contracts/logger.js';
import type { ProbeFailure } from './prober.js';

export async function killUnhealthy(o: {
  runtime: Runtime;
  key: string;
  graceSeconds: number;
  failure: ProbeFailure;
  emit: (ev: ContainerEvent) => void;
  logger: Logger;
}): Promise<void> {
  const what = o.failure.kind === 'startup' ? 'startup' : 'liveness';
  o.emit({ type: 'Warning', reason: 'Unhealthy', message: o.failure.message });
  o.logger.warn(`${o.key}: ${o.failure.message}; killing pid ${o.failure.pid}`, { container: o.key, probe: o.failure.kind });
  o.emit({ type: 'Normal', reason: 'Killing', message: `Container failed ${what} probe, will be restarted per restartPolicy` });
  await o.runtime.stop(o.key, { graceSeconds: o.graceSeconds, leaveExited: true });
}
