/** A path's mtime (ms), read synchronously; undefined when it cannot be stat'ed (gone, not a dir on the way, no access). */
import { statSync } from 'node:fs';

export function mtimeOf(file: string): number | undefined {
  try {
    return statSync(file, { throwIfNoEntry: false })?.mtimeMs;
  } catch {
    return undefined;
  }
}
