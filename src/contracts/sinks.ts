/**
 * Where the loop publishes what it observed: status (to `acetate get`, to the Kubernetes status
 * subresource) and events (to logs, to Kubernetes Events). Sources that want write-back (kube)
 * implement these; the loop calls every registered sink after each reconcile of a key.
 */
import type { ContainerStatus } from '../api/types.js';
import type { StatusRecord } from './status-record.js';

export interface StatusSink {
  /** Publishes the status of one container; implementations write only when it changed. */
  publish(key: string, status: ContainerStatus): Promise<void>;
}

export interface ContainerEvent {
  type: 'Normal' | 'Warning';
  /** CamelCase reason: Created, Resized, Replaced, Destroyed, Started, Stopped, Restarted, Failed, ResizeDeferred... */
  reason: string;
  message: string;
}

export interface EventRecorder {
  record(key: string, event: ContainerEvent): void;
}

/** A StatusSink that also takes the details only the loop knows. */
export interface DetailedStatusSink extends StatusSink {
  publishDetailed(record: StatusRecord): Promise<void>;
  remove(key: string): Promise<void>;
}

export function isDetailedSink(s: StatusSink): s is DetailedStatusSink {
  return typeof (s as Partial<DetailedStatusSink>).publishDetailed === 'function';
}
