/** Argument parsing on node:util parseArgs, with errors a user can act on. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './command.js';
import { parseDuration as parseDurationText } from '../util/duration.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** "30s", "2m", "500ms", "1h" or a plain number of seconds → milliseconds. */
/** A duration flag: "30s", "2m", "1m30s", "500ms", or a bare number of seconds. */
export function parseDuration(s: string, flag: string): number {
  try {
    return parseDurationText(s);
  } catch (err) {
    throw new UsageError(`${flag}: '${s}' is not a duration such as 30s, 2m or 500ms`, { cause: err });
  }
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
