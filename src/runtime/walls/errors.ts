/** The error of a wall that cannot be built from a spec (an unknown capability, a refused hostPath). */
import { InvalidError } from '../../contracts/errors.js';

/** The spec cannot be turned into a runnable OCI config: the same spec fails the same way (terminal). */
export class OciConfigError extends InvalidError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OciConfigError';
  }
}
