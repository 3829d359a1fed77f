import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { keyOf, parse, parsePositiveInt } from '../args.js';

export const logsCommand: Command = {
  name: 'logs',
  summary: "Print a container's output (stdout and stderr)",
  usage: `Usage: acetate logs NAME [-n NAMESPACE] [--tail N]

Prints what the container wrote to stdout and stderr, as recorded by its supervisor.`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { namespace: { type: 'string', short: 'n' }, tail: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('logs needs exactly one NAME');
    const { runtime } = await ctx.openRuntime();
    const key = keyOf(positionals[0]!, values.namespace);
    if (!(await runtime.get(key))) {
      ctx.stderr.write(`container ${key} not found\n`);
      return 1;
    }
    const text = await runtime.logs(key, values.tail ? { tail: parsePositiveInt(values.tail, '--tail') } : {});
    ctx.stdout.write(text);
    return 0;
  },
};
