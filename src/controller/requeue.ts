/**
 * What a reconcile asks the work queue to do with its key, and the one mapping from a typed
 * failure (contracts/errors.ts) to it. WorkQueue.done (queue.ts) carries it out.
 */
import { failureKind } from '../contracts/errors.js';

/** What a reconcile asks the queue to do with its key. */
export type Requeue =
  /** Converged (or nothing more to do until something changes): forget the key's backoff. */
  | { kind: 'done' }
  /** Failed, worth retrying: wait the key's next exponential backoff delay. */
  | { kind: 'backoff'; error?: unknown }
  /** Come back after ms (e.g. a crash-loop restart is due then). Not an error: backoff is forgotten. */
  | { kind: 'after'; ms: number }
  /** Failed in a way retrying cannot fix: wait for the next change of the key (resyncs do not wake it). */
  | { kind: 'terminal'; error?: unknown }
  /** Lost a write race (a conflict): process again at once, re-reading everything. */
  | { kind: 'now'; error?: unknown };

/**
 * The Requeue a failure asks for, by its kind (contracts/errors.ts): conflict → now, gone → done,
 * invalid → terminal, anything else → backoff.
 */
export function requeueFor(error: unknown): Requeue {
  switch (failureKind(error)) {
    case 'conflict':
      return { kind: 'now', error };
    case 'gone':
      return { kind: 'done' };
    case 'invalid':
      return { kind: 'terminal', error };
    case 'transient':
      return { kind: 'backoff', error };
  }
}

/** Conflicts retried at once in a row before the key backs off. */
export const IMMEDIATE_RETRIES = 3;
