/** Argument parsing on node:util parseArgs, with errors a user can act on. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './command.js';
import { parseDuration as parseDurationText } from '../util/duration.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** `-o/--output FORMAT`, with the command's default format. */
export function outputOption<D extends string>(defaultFormat: D) {
  return { type: 'string', short: 'o', default: defaultFormat } as const;
}

export function parse<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** A duration flag: "30s", "2m", "1m30s", "500ms", or a bare number of seconds. */
/**
 * `acetate COMMAND SUB [args]`: SUB, by the canonical name `words` maps it to (aliases such as
 * ls → list map to the same name, so a switch over the result needs no default), and the rest
 * parsed with `options`. A missing or unknown SUB is a usage error listing the subcommands.
 */
export function parseSubcommand<S extends string, O extends Options>(command: string, argv: string[], words: Readonly<Record<string, S>>, options: O) {
  const [word, ...rest] = argv;
  const names = [...new Set(Object.values(words))].join(', ');
  if (!word) throw new UsageError(`${command} needs a subcommand: ${names}`);
  if (!Object.hasOwn(words, word)) throw new UsageError(`unknown ${command} subcommand '${word}' (one of: ${names})`);
  return { sub: words[word]!, ...parse(rest, options) };
}

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
