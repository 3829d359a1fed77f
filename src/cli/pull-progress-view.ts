/**
 * Pull progress on a terminal (`image pull`, `apply`): one line per image at most every
 * PROGRESS_EVERY_MS, and only when something moved. Lines, not a redrawn bar: apply prints its
 * actions on the same terminal meanwhile. Only where a person watches (the caller checks isTTY).
 */
import type { Writable } from 'node:stream';
import { progressText, type PullProgress } from '../images/pull-progress.js';
import { print } from './command.js';

export const PROGRESS_EVERY_MS = 2000;

export function terminalProgress(out: Writable, now: () => number = Date.now): (p: PullProgress) => void {
  const last = new Map<string, { at: number; bytes: number }>();
  return (p) => {
    const seen = last.get(p.id);
    if (seen && (seen.bytes === p.bytesDone || now() - seen.at < PROGRESS_EVERY_MS)) return;
    last.set(p.id, { at: now(), bytes: p.bytesDone });
    print(out, `  ${progressText(p)}`);
  };
}
