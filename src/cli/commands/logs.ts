import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { keyOf, parse, parseDuration } from '../args.js';
import { createWriteStream } from 'node:fs';
import type { LogOptions } from '../../runtime/runtime.js';
import { GoneError } from '../../contracts/errors.js';

/** --since: a duration back from now (5m, 1h, 30s) or an RFC 3339 time. */
export function parseSince(s: string, now = Date.now()): number {
  if (/^\d+(?:\.\d+)?(?:ms|s|m|h)$/.test(s.trim())) return now - parseDuration(s, '--since');
  const t = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i.test(s.trim()) ? Date.parse(s.trim().replace(/(\.\d{3})\d+/, '$1')) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--since: '${s}' is neither a duration such as 5m or 1h nor an RFC 3339 time such as 2026-01-02T15:04:05Z`);
  return t;
}

/**
 * --tail as kubectl takes it: a whole number, negative meaning all (kubectl's default -1), 0
 * none; undefined for all.
 */
export function parseTail(s: string): number | undefined {
  const n = /^-?\d+$/.test(s.trim()) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`--tail: '${s}' is not a whole number (-1: all lines, 0: none)`);
  return n < 0 ? undefined : n;
}

/** `--tail -1` as `--tail=-1`: parseArgs would take -1 for an option (kubectl's flags take it as the value). */
function withNegativeTail(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') return [...out, ...argv.slice(i)];
    if (argv[i] === '--tail' && /^-\d+$/.test(argv[i + 1] ?? '')) out.push(`--tail=${argv[++i]!}`);
    else out.push(argv[i]!);
  }
  return out;
}

export const logsCommand: Command = {
  name: 'logs',
  summary: "Print a container's output (stdout and stderr)",
  usage: `Usage: acetate logs NAME [-n NAMESPACE] [--tail N] [-f] [-p] [--since 5m|RFC3339] [--timestamps]

Prints what the container wrote to stdout and stderr, as recorded by its supervisor (conmon)
in <state-dir>/containers/<namespace>_<name>/container.log (Kubernetes' CRI log format).
The bytes are the container's own, unchanged (binary output included; escape sequences
reach the terminal as with kubectl, docker and podman logs); output that does not end with a
newline is printed without one.

  --tail N       only the last N lines (-1: all, the default; 0: none, with -f only new lines)
  -f, --follow   keep printing new lines as they are written, until the container is
                 destroyed (or ^C); restarts of its process do not end it. Across the
                 log's rotation (ACETATE_LOG_SIZE_MAX) nothing is lost unless a whole
                 rotated file is replaced before it can be opened, which is then said
  -p, --previous the log of the container's run before its last restart or replace
  --since WHEN   only lines written since WHEN: a duration back from now (30s, 5m, 2h) or an
                 RFC 3339 time (2026-01-02T15:04:05Z)
  --timestamps   prefix each line with the time it was written (RFC 3339, nanoseconds)`,
  async run(argv, ctx) {
    const { values, positionals } = parse(withNegativeTail(argv), {
      namespace: { type: 'string', short: 'n' },
      tail: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      since: { type: 'string' },
      timestamps: { type: 'boolean' },
      previous: { type: 'boolean', short: 'p' },
    });
    if (positionals.length !== 1) throw new UsageError('logs needs exactly one NAME');
    const opts: LogOptions = {};
    const tail = values.tail === undefined ? undefined : parseTail(values.tail);
    if (tail !== undefined) opts.tail = tail;
    if (values.since) opts.sinceMs = parseSince(values.since);
    if (values.timestamps) opts.timestamps = true;
    const { runtime } = await ctx.openRuntime();
    const key = keyOf(positionals[0]!, values.namespace);
    // The container's bytes as they are: not through the terminal escaping of human output.
    const out = ctx.rawStdout ?? ctx.stdout;
    if (values.previous) {
      // A previous run's log does not grow: printed (with -f too), as kubectl does.
      try {
        out.write(await runtime.logBytes(key, { ...opts, previous: true }));
        return 0;
      } catch (err) {
        if (!(err instanceof GoneError)) throw err;
        print(ctx.stderr, (await runtime.get(key)) ? `acetate: ${err.message}` : `acetate: container ${key} not found`);
        return 1;
      }
    }
    if (!(await runtime.get(key))) {
      print(ctx.stderr, `acetate: container ${key} not found`);
      return 1;
    }
    if (!values.follow) {
      out.write(await runtime.logBytes(key, opts));
      return 0;
    }
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      // Written by libuv's thread pool, not by a blocking write(2) on the event loop (Node writes
      // to a pipe synchronously): a slow reader must not keep the follower from opening the next
      // rotated file in time. At most 8 MiB wait in memory; beyond that reading waits.
      const async = out === process.stdout ? createWriteStream('', { fd: process.stdout.fd, autoClose: false, highWaterMark: 8 * 1024 * 1024 }) : out;
      // A reader gone (EPIPE) ends the follow, as a closed pipe ends `tail -f`.
      async.on('error', stop);
      const write = (bytes: Buffer): void | Promise<void> => {
        if (async.write(bytes)) return;
        return new Promise<void>((resolve) => {
          async.once('drain', resolve);
          async.once('close', resolve); // an error closes it: nothing more to wait for
        });
      };
      await runtime.followLogs(key, write, {
        ...opts,
        signal: abort.signal,
        onMissed: (n) =>
          ctx.stderr.write(
            `acetate: ${n} rotated log file(s) of ${key} were replaced before they could be read: their lines are lost (a larger ACETATE_LOG_SIZE_MAX keeps up with faster output)\n`,
          ),
      });
      if (async !== out) await new Promise<void>((resolve) => async.end(resolve));
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
