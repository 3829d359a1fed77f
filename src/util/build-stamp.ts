/**
 * This build of acetate, as a string: any rebuild (new rules, new defaults, new shapes) gives
 * another one. Compared, never parsed: a cache written by another build is a miss, a loop of
 * another build is not asked (controller/view-socket.ts).
 */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Set by the bundler (scripts/bundle.mjs) to an id of its own per build; absent in tsc's dist/src. */
declare const __ACETATE_BUILD_ID__: string | undefined;

let stamp: string | undefined;

export function buildStamp(): string {
  if (stamp !== undefined) return stamp;
  if (typeof __ACETATE_BUILD_ID__ === 'string') return (stamp = __ACETATE_BUILD_ID__);
  try {
    // tsc's output: the file holding this code, rewritten by every build.
    const st = statSync(fileURLToPath(import.meta.url));
    stamp = `${st.mtimeMs}:${st.size}`;
  } catch {
    stamp = `unknown:${Math.random()}`; // unknown: never matches
  }
  return stamp;
}
