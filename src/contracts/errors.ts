/**
 * Typed failures, in the spirit of kopf's TemporaryError/PermanentError and controller-runtime's
 * TerminalError. Whatever fails inside a reconcile (an action, a Kubernetes status or finalizer
 * write, an image pull) says which kind of failure it is; WorkQueue.done alone turns the kind
 * into what happens next (see requeueFor in controller/requeue.ts):
 *
 * - conflict:  someone else changed the object first; re-read and try again now.
 * - gone:      the object the write was for no longer exists; nothing left to do.
 * - invalid:   the same input fails the same way; wait for the next change of the key.
 * - transient: anything else (a network hiccup, a busy device, an unknown error); back off.
 *
 * The kind is found by class, walking the `cause` chain, never by class-name strings.
 */

export type FailureKind = 'conflict' | 'gone' | 'invalid' | 'transient';

/** Base of the typed failures: `kind` says how it is retried. */
export abstract class ReconcileFailure extends Error {
  abstract readonly kind: FailureKind;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name; // ConflictError, GoneError, …: what a log line shows
  }
}

/** The write lost a race (HTTP 409, a resourceVersion that moved on): retry at once. */
export class ConflictError extends ReconcileFailure {
  readonly kind = 'conflict';
}

/** What the work was for is gone (HTTP 404 on a status or finalizer write): done. */
export class GoneError extends ReconcileFailure {
  readonly kind = 'gone';
}

/** The input itself cannot work (a refused spec, HTTP 422): terminal until the key changes. */
export class InvalidError extends ReconcileFailure {
  readonly kind = 'invalid';
}

/** Worth retrying later (HTTP 5xx, a timeout, a busy runtime): back off. */
export class TransientError extends ReconcileFailure {
  readonly kind = 'transient';
}

/** The first error on `err`'s cause chain (itself included) that is a `type`, if any. */
export function causeOf<T extends Error>(err: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  const seen = new Set<unknown>();
  for (let e: unknown = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    if (e instanceof type) return e;
  }
  return undefined;
}

/** The kind of a failure: the first typed failure on its cause chain; untyped errors are transient. */
export function failureKind(err: unknown): FailureKind {
  return causeOf(err, ReconcileFailure)?.kind ?? 'transient';
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
