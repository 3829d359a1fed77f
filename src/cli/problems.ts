/** Prints manifest problems as `file:line: field: message`, the form editors and CI understand. */
import type { Writable } from 'node:stream';
import type { SourceProblem } from '../sources/source.js';

export function formatProblem(p: SourceProblem): string {
  const where = p.line ? `${p.origin}:${p.line}` : p.origin;
  const field = p.field ? `${p.field}: ` : '';
  return `${where}: ${field}${p.message}`;
}

export function printProblems(stream: Writable, problems: SourceProblem[], prefix = 'error'): void {
  for (const p of problems) stream.write(`${prefix}: ${formatProblem(p)}\n`);
}
