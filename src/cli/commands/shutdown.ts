/**
 * `acetate shutdown`: stops every running container of this node the way a replace or a
 * `state: Stopped` does (SIGTERM, its terminationGracePeriodSeconds, SIGKILL), all at once up to
 * --concurrency, so that a system shutdown takes as long as the longest grace period, not their
 * sum. Records and private areas stay: the next `acetate run` starts the containers again, as it
 * does after a reboot. What controller/systemd/acetate-shutdown.service runs when the system goes
 * down (docs/supervision.md, "systemd").
 */
import pLimit from 'p-limit';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { parse, parsePositiveInt } from '../args.js';
import { commandLine } from '../converge-input.js';
import { messageOf } from '../../contracts/errors.js';

export const shutdownCommand: Command = {
  name: 'shutdown',
  summary: 'Stop every running container gracefully (at system shutdown); they start again with the next run',
  usage: `Usage: acetate shutdown [--concurrency N] [--wait]

Stops every running container of this node: SIGTERM, then SIGKILL after the container's
terminationGracePeriodSeconds, many at once (so it takes about as long as the longest grace
period). Nothing is removed: records, private areas and logs stay, and the next \`acetate run\`
(or apply) starts the containers again. Run by acetate-shutdown.service when the system shuts
down, after acetate.service has stopped, so that containers end with their grace periods and
not by systemd's final kill of every process.

  --concurrency N   containers stopped at once (default 32)
  --wait            when another acetate holds this state dir's lock, wait for it instead of
                    exiting 1

Exit status: 0 when every container was stopped, 1 otherwise (each failure is printed).`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      concurrency: { type: 'string', default: '32' },
      wait: { type: 'boolean' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const concurrency = parsePositiveInt(values.concurrency, '--concurrency');
    try {
      await ctx.lockNode({ wait: !!values.wait, command: commandLine() });
    } catch (err) {
      if ((err as Error).name !== 'NodeLockBusyError') throw err;
      ctx.stderr.write(`acetate: ${messageOf(err)}\n`);
      return 1;
    }
    const { runtime } = await ctx.openRuntime();
    const running = (await runtime.list()).filter((c) => c.process.state === 'running');
    if (!running.length) {
      print(ctx.stdout, 'no container is running');
      return 0;
    }
    const limit = pLimit(concurrency);
    const results = await Promise.all(
      running.map((c) =>
        limit(async () => {
          const grace = c.applied.spec.terminationGracePeriodSeconds;
          const t0 = Date.now();
          try {
            const { exitCode } = await runtime.stop(c.key, { graceSeconds: grace });
            const secs = ((Date.now() - t0) / 1000).toFixed(1);
            print(ctx.stdout, `stopped ${c.key}: exit ${exitCode ?? 'unknown'} after ${secs}s (grace period ${grace}s)`);
            return true;
          } catch (err) {
            print(ctx.stderr, `acetate: cannot stop ${c.key}: ${messageOf(err)}`);
            return false;
          }
        }),
      ),
    );
    return results.every(Boolean) ? 0 : 1;
  },
};
