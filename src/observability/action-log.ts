/**
 * The one line logged per action, apart from logger.ts: `apply` reaches it through the controller's
 * action runner (run-actions.ts) and must not load winston for it (~70 ms of every `apply`'s start).
 */
import type { Logger } from '../contracts/logger.js';

export interface ActionLogEntry {
  container: string;
  action: string;
  durationMs: number;
  /** The outcome (created, resized, deferred...), or `error`. */
  result: string;
  reason?: string;
  pid?: number;
  error?: string;
  retry?: 'backoff' | 'terminal';
  retryInMs?: number;
}

/** The one line logged per action. */
export function logAction(logger: Logger, e: ActionLogEntry): void {
  const fields: Record<string, unknown> = { container: e.container, action: e.action, durationMs: e.durationMs, result: e.result };
  if (e.reason) fields.reason = e.reason;
  if (e.pid !== undefined) fields.pid = e.pid;
  if (e.error) fields.error = e.error;
  if (e.retry) fields.retry = e.retry;
  if (e.retryInMs !== undefined) fields.retryInMs = e.retryInMs;
  if (e.error) logger.warn(`${e.action} ${e.container} failed`, fields);
  else logger.info(`${e.action} ${e.container}: ${e.result}`, fields);
}
