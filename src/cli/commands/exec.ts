/** `acetate exec NAME [-i] [-t] -- CMD ARGS...`: a process in a running container, like `kubectl exec`. */
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { keyOf, parse } from '../args.js';
import { ExecUnsupportedError, NotFoundError, NotRunningError } from '../../runtime/runtime.js';

const parseOwn = (argv: string[]) =>
  parse(argv, {
    namespace: { type: 'string', short: 'n' },
    stdin: { type: 'boolean', short: 'i' },
    tty: { type: 'boolean', short: 't' },
  });

/** argv with `--` after NAME (the first word that is no option of exec's), when exec's own part then parses. */
function withDash(argv: string[]): string[] | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-n' || a === '--namespace') i++;
    else if (!a.startsWith('-')) {
      if (i === argv.length - 1) return undefined;
      const own = argv.slice(0, i + 1);
      try {
        parseOwn(own);
      } catch {
        return undefined;
      }
      return [...own, '--', ...argv.slice(i + 1)];
    }
  }
  return undefined;
}

/** A word as a POSIX shell reads it back (single-quoted unless plain). */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export const execCommand: Command = {
  name: 'exec',
  summary: 'Run a command in a running container (its namespaces and cgroup)',
  usage: `Usage: acetate exec NAME [-n NAMESPACE] [-i] [-t] -- COMMAND [ARGS...]

Runs COMMAND inside the running container NAME, as \`kubectl exec\` does: in the container's
namespaces (pid, mount, network, uts, ipc) and cgroup, with its environment. The exit status
is COMMAND's; 127 when COMMAND is not found, 126 when it cannot be run (as Podman and Docker).
COMMAND's own options need -- before COMMAND (as with kubectl).

  -i, --stdin   pass this terminal's (or pipe's) standard input to COMMAND
  -t, --tty     give COMMAND a terminal (needs a terminal on stdin; e.g. acetate exec -it web -- sh)`,
  async run(argv, ctx) {
    const dash = argv.indexOf('--');
    const own = dash < 0 ? argv : argv.slice(0, dash);
    let parsed;
    try {
      parsed = parseOwn(own);
    } catch (err) {
      // As kubectl: the command's options need `--` before the command; say where it goes.
      const fixed = dash < 0 ? withDash(argv) : undefined;
      if (err instanceof UsageError && fixed) {
        throw new UsageError(`${err.message}: options of the command go after --, as in: acetate exec ${fixed.map(shellWord).join(' ')}`, { cause: err });
      }
      throw err;
    }
    const { values, positionals } = parsed;
    const command = dash < 0 ? positionals.slice(1) : [...positionals.slice(1), ...argv.slice(dash + 1)];
    if (positionals.length < 1) throw new UsageError('exec needs a container NAME');
    if (command.length === 0) throw new UsageError('exec needs a COMMAND after --');
    let tty = !!values.tty;
    if (tty && !process.stdin.isTTY) {
      // As kubectl: the command still runs, without a terminal.
      print(ctx.stderr, 'Unable to use a TTY - input is not a terminal or the right kind of file');
      tty = false;
    }
    const { runtime } = await ctx.openRuntime();
    const key = keyOf(positionals[0]!, values.namespace);
    try {
      const r = await runtime.exec(key, { command, stdio: 'inherit', interactive: !!values.stdin, tty });
      if (r.startError) print(ctx.stderr, `acetate: ${r.startError}`);
      return r.exitCode;
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof NotRunningError || err instanceof ExecUnsupportedError) {
        print(ctx.stderr, `acetate: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};
