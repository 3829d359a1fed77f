/**
 * A failed Kubernetes write as a typed failure (contracts/errors.ts), so that WorkQueue.done alone
 * decides what happens next:
 * - 409 Conflict (a resourceVersion that moved on): ConflictError, re-read and try again now;
 * - 404 Not Found (the object is gone): GoneError, nothing left to do;
 * - 400 / 422 (the API server refuses the content): InvalidError, terminal until the key changes;
 * - anything else (5xx, 429, 401/403 until RBAC is fixed, timeouts, network): TransientError, back off.
 */
import { ConflictError, GoneError, InvalidError, TransientError, type ReconcileFailure } from '../../contracts/errors.js';
import { KubeApiError } from './client.js';

export function kubeFailure(err: unknown, what: string): ReconcileFailure {
  const e = err instanceof KubeApiError ? err : new KubeApiError(0, 'Unknown', String(err), { cause: err });
  const message = `${what}: ${e.message}`;
  switch (e.code) {
    case 409:
      return new ConflictError(message, { cause: e });
    case 404:
      return new GoneError(message, { cause: e });
    case 400:
    case 422:
      return new InvalidError(message, { cause: e });
    default:
      return new TransientError(message, { cause: e });
  }
}
