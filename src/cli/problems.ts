/** Prints manifest problems as `file:line: field: message`, the form editors and CI understand. */
import type { Writable } from 'node:stream';
import type { SourceProblem } from '../contracts/source.js';
import { MAX_ERROR_CHARS, terminalText } from '../util/terminal-text.js';

/** Lines printed per file before the rest is summarized (10,000 bad documents are not 20,000 lines). */
export const MAX_LINES_PER_FILE = 20;

export function formatProblem(p: SourceProblem): string {
  // File names come from repositories and messages quote registries: escaped, one line, bounded.
  const where = terminalText(p.line ? `${p.origin}:${p.line}` : p.origin);
  const field = p.field ? `${terminalText(p.field)}: ` : '';
  return `${where}: ${field}${terminalText(p.message, MAX_ERROR_CHARS)}`;
}

/** The first `max` problems of each origin, then one line per origin saying how many more there are. */
export function cappedLines(problems: SourceProblem[], max = MAX_LINES_PER_FILE): string[] {
  const shown = new Map<string, number>();
  const out: string[] = [];
  for (const p of problems) {
    const n = (shown.get(p.origin) ?? 0) + 1;
    shown.set(p.origin, n);
    if (n <= max) out.push(formatProblem(p));
  }
  for (const [origin, n] of shown) if (n > max) out.push(`${origin}: ... and ${n - max} more (${n} in all; fix the first ones and run again)`);
  return out;
}

export function printProblems(stream: Writable, problems: SourceProblem[], prefix = 'error'): void {
  for (const line of cappedLines(problems)) stream.write(`${prefix}: ${line}\n`);
}

/** Documents and files that were skipped (other kinds, FIFOs): reported, not errors. */
export function printWarnings(stream: Writable, warnings: SourceProblem[] | undefined): void {
  if (warnings?.length) printProblems(stream, warnings, 'warning');
}
