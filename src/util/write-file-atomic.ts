/**
 * write-file-atomic, loaded at its first use. Why: loading it (a CommonJS package and its own
 * dependencies, through the ESM loader) is ~15 ms, and the short read-only commands (`get`,
 * `plan`, `describe`) that load the modules that write never write.
 */
import { createRequire } from 'node:module';
import type writeFileAtomicType from 'write-file-atomic';

let loaded: typeof writeFileAtomicType | undefined;

export function writeFileAtomic(): typeof writeFileAtomicType {
  return (loaded ??= createRequire(import.meta.url)('write-file-atomic') as typeof writeFileAtomicType);
}
