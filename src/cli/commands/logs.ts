import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { keyOf, parse, parseDuration, parsePositiveInt } from '../args.js';
import type { LogOptions } from '../../runtime/runtime.js';

/** --since: a duration back from now (5m, 1h, 30s) or an RFC 3339 time. */
export function parseSince(s: string, now = Date.now()): number {
  if (/^\d+(?:\.\d+)?(?:ms|s|m|h)$/.test(s.trim())) return now - parseDuration(s, '--since');
  const t = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i.test(s.trim()) ? Date.parse(s.trim().replace(/(\.\d{3})\d+/, '$1')) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--since: '${s}' is neither a duration such as 5m or 1h nor an RFC 3339 time such as 2026-01-02T15:04:05Z`);
  return t;
}

export const logsCommand: Command = {
  name: 'logs',
  summary: "Print a container's output (stdout and stderr)",
  usage: `Usage: acetate logs NAME [-n NAMESPACE] [--tail N] [-f] [--since 5m|RFC3339] [--timestamps]

Prints what the container wrote to stdout and stderr, as recorded by its supervisor (conmon)
in <state-dir>/containers/<namespace>_<name>/container.log (Kubernetes' CRI log format).

  --tail N       only the last N lines
  -f, --follow   keep printing new lines as they are written, until the container is
                 destroyed (or ^C); restarts of its process do not end it
  --since WHEN   only lines written since WHEN: a duration back from now (30s, 5m, 2h) or an
                 RFC 3339 time (2026-01-02T15:04:05Z)
  --timestamps   prefix each line with the time it was written (RFC 3339, nanoseconds)`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      namespace: { type: 'string', short: 'n' },
      tail: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      since: { type: 'string' },
      timestamps: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('logs needs exactly one NAME');
    const opts: LogOptions = {};
    if (values.tail) opts.tail = parsePositiveInt(values.tail, '--tail');
    if (values.since) opts.sinceMs = parseSince(values.since);
    if (values.timestamps) opts.timestamps = true;
    const { runtime } = await ctx.openRuntime();
    const key = keyOf(positionals[0]!, values.namespace);
    if (!(await runtime.get(key))) {
      ctx.stderr.write(`container ${key} not found\n`);
      return 1;
    }
    if (!values.follow) {
      ctx.stdout.write(await runtime.logs(key, opts));
      return 0;
    }
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await runtime.followLogs(key, (text) => ctx.stdout.write(text), { ...opts, signal: abort.signal });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
