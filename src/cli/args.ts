/** Argument parsing on node:util parseArgs, with errors a user can act on. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './command.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** "30s", "2m", "500ms", "1h" or a plain number of seconds → milliseconds. */
export function parseDuration(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: '${s}' is not a duration such as 30s, 2m or 500ms`);
  const n = Number(m[1]);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  return Math.round(n * mult);
}

export function parsePositiveInt(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: '${s}' is not a whole number of at least 1`);
  return n;
}

/** NAME or NAMESPACE/NAME → key. */
export function keyOf(arg: string, namespace?: string): string {
  return arg.includes('/') ? arg : `${namespace ?? 'default'}/${arg}`;
}
