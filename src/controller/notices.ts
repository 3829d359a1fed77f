/**
 * What the loop tells people about a container besides its status: events (to the recorders:
 * logs, Kubernetes Events) and one log line per new waiting reason (CrashLoopBackOff,
 * RestartPolicy, ImagePullBackOff...), not one per reconcile.
 */
import type { ContainerEvent, EventRecorder } from '../contracts/sinks.js';
import type { Waiting } from '../contracts/status-record.js';
import type { Logger } from '../contracts/logger.js';
import type { SourceProblem } from '../contracts/source.js';
import { messageOf } from '../contracts/errors.js';

/** The event an action's outcome is reported as. */
export const EVENT_REASON: Record<string, { type: ContainerEvent['type']; reason: string }> = {
  created: { type: 'Normal', reason: 'Created' },
  started: { type: 'Normal', reason: 'Started' },
  stopped: { type: 'Normal', reason: 'Stopped' },
  resized: { type: 'Normal', reason: 'Resized' },
  deferred: { type: 'Warning', reason: 'ResizeDeferred' },
  restarted: { type: 'Normal', reason: 'Restarted' },
  replaced: { type: 'Normal', reason: 'Replaced' },
  configured: { type: 'Normal', reason: 'Configured' },
  published: { type: 'Normal', reason: 'PortsPublished' },
  repaired: { type: 'Warning', reason: 'NetworkRepaired' },
  destroyed: { type: 'Normal', reason: 'Destroyed' },
};

function eventOfWaiting(w: Waiting): string {
  if (w.reason === 'CrashLoopBackOff' || w.reason === 'ImagePullBackOff') return 'BackOff';
  if (w.reason === 'SupervisorLost') return 'SupervisorLost';
  return w.reason.startsWith('ErrImage') ? 'Failed' : 'NotRestarted';
}

export class Notices {
  /** The waiting reason last told per key. */
  private shown = new Map<string, string>();
  /** The security-level refusals last told per key. */
  private refused = new Map<string, string>();

  constructor(
    private readonly recorders: EventRecorder[],
    private readonly logger: Logger,
  ) {}

  emit(key: string, ev: ContainerEvent): void {
    for (const r of this.recorders) {
      try {
        r.record(key, ev);
      } catch (err) {
        // Events are best effort by nature (Kubernetes drops them too); the status says it all.
        this.logger.warn('event recorder failed', { error: messageOf(err) });
      }
    }
  }

  /** Tells a new waiting reason of key once; undefined: key no longer waits. */
  waiting(key: string, w: Waiting | undefined): void {
    if (!w) {
      this.shown.delete(key);
      return;
    }
    const text = `${w.reason}: ${w.message}`;
    if (this.shown.get(key) === text) return;
    this.shown.set(key, text);
    if (w.reason === 'SupervisorLost' || w.reason === 'ExitCodeUnknown') this.logger.warn(`${key}: ${w.message}`, { container: key, reason: w.reason });
    else this.logger.info(`${key}: ${w.message}`, { container: key, reason: w.reason });
    this.emit(key, { type: 'Warning', reason: eventOfWaiting(w), message: w.message });
  }

  /**
   * Tells the security-level refusals of key once (a Warning event `Forbidden` naming level, rule
   * and field, as Kubernetes' admission names the PodSecurity rule); [] once it complies again.
   */
  forbidden(key: string, problems: readonly SourceProblem[]): void {
    const text = problems.map((p) => `${p.field ? `${p.field}: ` : ''}${p.message}`).join('; ');
    if (!text) {
      this.refused.delete(key);
      return;
    }
    if (this.refused.get(key) === text) return;
    this.refused.set(key, text);
    this.emit(key, { type: 'Warning', reason: 'Forbidden', message: text });
  }

  forget(key: string): void {
    this.shown.delete(key);
    this.refused.delete(key);
  }
}
