/**
 * Failures of an action. Whether retrying can help is not decided here: it is the failure's kind
 * (contracts/errors.ts: a runtime refusal is an InvalidError, anything untyped is transient), and
 * WorkQueue.done turns the kind into a delay. ActionError only says which action failed.
 */
import type { ActionKind } from '../plan/actions.js';
import { failureKind, messageOf } from '../contracts/errors.js';

/**
 * backoff: retry with per-key exponential backoff (runtime hiccup, disk full, busy...).
 * terminal: retrying the same spec cannot help; wait for the next change of the key.
 */
export type RetryHint = 'backoff' | 'terminal';

export class ActionError extends Error {
  constructor(
    readonly key: string,
    readonly kind: ActionKind,
    readonly retry: RetryHint,
    options: { cause: unknown },
  ) {
    super(`${kind} ${key} failed: ${messageOf(options.cause)}`, options);
    this.name = 'ActionError';
  }
}

/** The retry hint of a failure, from its kind: an invalid input is terminal, anything else backs off. */
export function classify(err: unknown): RetryHint {
  return failureKind(err) === 'invalid' ? 'terminal' : 'backoff';
}
