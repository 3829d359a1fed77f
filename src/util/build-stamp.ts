/**
 * This build of acetate, as a string: any rebuild (new rules, new defaults, new shapes) gives
 * another one. Compared, never parsed: a cache written by another build is a miss, a loop of
 * another build is not asked (controller/view-socket.ts).
 */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let stamp: string | undefined;

export function buildStamp(): string {
  if (stamp !== undefined) return stamp;
  try {
    // The file holding this code: rewritten by every build (the bundle's chunk, or dist/src's module).
    const st = statSync(fileURLToPath(import.meta.url));
    stamp = `${st.mtimeMs}:${st.size}`;
  } catch {
    stamp = `unknown:${Math.random()}`; // unknown: never matches
  }
  return stamp;
}
