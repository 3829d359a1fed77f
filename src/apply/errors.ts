/**
 * Failures of an action. Whether retrying can help is not decided here: it is the failure's kind
 * (contracts/errors.ts: a runtime refusal is an InvalidError, anything untyped is transient), and
 * WorkQueue.done turns the kind into a delay. ActionError only says which action failed.
 */
import type { ActionKind } from '../plan/actions.js';
import { messageOf } from '../contracts/errors.js';

export class ActionError extends Error {
  constructor(
    readonly key: string,
    readonly kind: ActionKind,
    options: { cause: unknown },
  ) {
    super(`${kind} ${key} failed: ${messageOf(options.cause)}`, options);
    this.name = 'ActionError';
  }
}
