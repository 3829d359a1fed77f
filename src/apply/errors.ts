/** Failures of an action, and the one place that decides whether retrying can help. */
import type { ActionKind } from '../plan/actions.js';
import { NotFoundError, RuntimeUnavailableError } from '../runtime/runtime.js';

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

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Errors that no retry of the same spec fixes. */
export class SpecError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpecError';
  }
}

/** Errors of the runtime that say the spec itself cannot run (same spec, same failure). */
const SPEC_ERROR_NAMES = new Set(['SpecError', 'OciConfigError', 'ImageProcessError']);

export function classify(err: unknown): RetryHint {
  if (err instanceof Error && SPEC_ERROR_NAMES.has(err.name)) return 'terminal';
  if (err instanceof RuntimeUnavailableError) return 'backoff';
  if (err instanceof NotFoundError) return 'backoff';
  return 'backoff';
}
