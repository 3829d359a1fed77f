#!/usr/bin/env node
/** acetate's command line: global flags, command dispatch, and one-line errors. */
import { COMMANDS } from './commands/index.js';
import { print, UsageError, type Command } from './command.js';
import { createContext, resolveRunDir, resolveStateDir, DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from './context.js';
import { RuntimeUnavailableError } from '../runtime/runtime.js';
import { DEFAULT_BRIDGE, DEFAULT_SUBNET, nodeNetworkFlagProblem } from '../runtime/network/node-config.js';
import { readNodeRoutes } from '../runtime/network/node-routes.js';
import { isolationSettingsFromEnv } from '../runtime/walls/settings.js';
import { ActionError } from '../apply/errors.js';
import { messageOf } from '../contracts/errors.js';
import { defaultDiskProblem } from '../api/node-defaults.js';
import { terminalLines } from '../util/terminal-text.js';
import { registryTimeoutMs } from '../images/registry-timeout.js';

const VERSION = '0.1.0';

function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `acetate: declarative light containers (runc + overlayfs) on this node

Usage: acetate [--state-dir DIR] [--run-dir DIR] COMMAND [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Global options:
  --state-dir DIR  templates, private areas, logs and status: what survives a reboot
                   (default ${DEFAULT_STATE_DIR}, or $ACETATE_STATE_DIR)
  --run-dir DIR    acetate's runc root, OCI bundles and conmon's files: what a reboot
                   ends, best on a tmpfs (default ${DEFAULT_RUN_DIR} with the default state
                   dir, <state-dir>/run with another, or $ACETATE_RUN_DIR)
  --network-bridge NAME, --network-subnet CIDR
                   the node network of \`network: bridge\` containers (default ${DEFAULT_BRIDGE},
                   ${DEFAULT_SUBNET}; or $ACETATE_NETWORK_BRIDGE, $ACETATE_NETWORK_SUBNET)
  --default-disk QUANTITY
                   resources.disk of containers that set none, e.g. 10Gi (or
                   $ACETATE_DEFAULT_DISK); without it their private area is unbounded
  --registry-timeout DURATION
                   the registry time limit: a manifest lookup that takes longer, or a
                   download that receives nothing for this long, is killed and the container
                   waits in ErrImagePull, retried with back-off (default 30s, or
                   $ACETATE_REGISTRY_TIMEOUT)
  --host-users true|false
                   what a container without securityContext.hostUsers gets: false (the
                   default), a user namespace with its own range of node ids; true, the
                   node's ids (or $ACETATE_HOST_USERS). A change is a replace \`plan\` shows
  --userns-pool FIRST:COUNT
                   the node ids containers' ranges (65536 each) are cut from (default
                   1000000000:655360000, or $ACETATE_USERNS_POOL)
  -h, --help       help (also: acetate COMMAND --help)
  --version        print the version

Run 'acetate COMMAND --help' for a command's options.
`;
}

type GlobalArgs = {
  stateDir?: string;
  runDir?: string;
  bridge?: string;
  subnet?: string;
  defaultDisk?: string;
  registryTimeout?: string;
  hostUsers?: string;
  usernsPool?: string;
  help: boolean;
  version: boolean;
  command?: string;
  rest: string[];
};

/** Global options that take a value, by flag. */
const DIR_FLAGS = {
  '--state-dir': 'stateDir',
  '--run-dir': 'runDir',
  '--network-bridge': 'bridge',
  '--network-subnet': 'subnet',
  '--default-disk': 'defaultDisk',
  '--registry-timeout': 'registryTimeout',
  '--host-users': 'hostUsers',
  '--userns-pool': 'usernsPool',
} as const;

/** Splits global flags (anywhere before the command, or after it) from the command and its arguments. */
function splitGlobal(argv: string[]): GlobalArgs {
  const out: GlobalArgs = { help: false, version: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const flag = Object.keys(DIR_FLAGS).find((f) => a === f || a.startsWith(`${f}=`)) as keyof typeof DIR_FLAGS | undefined;
    if (flag) {
      if (a.startsWith(`${flag}=`)) out[DIR_FLAGS[flag]] = a.slice(flag.length + 1);
      else if (i + 1 < argv.length) out[DIR_FLAGS[flag]] = argv[++i];
      else if (out.command) out.rest.push(a);
      else
        throw new UsageError(
          `${flag} needs a ${flag === '--default-disk' ? 'quantity' : flag === '--registry-timeout' ? 'duration' : flag.startsWith('--network') ? 'value' : 'directory'}`,
        );
    } else if (out.command) out.rest.push(a);
    else if (a === '-h' || a === '--help' || a === 'help') out.help = true;
    else if (a === '--version' || a === 'version') out.version = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown global option ${a}`);
    else out.command = a;
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  // Nothing acetate or its children (conmon) write is world-writable, whatever the caller's umask.
  process.umask(0o022);
  let command: Command | undefined;
  try {
    const g = splitGlobal(argv);
    if (g.version) {
      print(process.stdout, `acetate ${VERSION}`);
      return 0;
    }
    if (!g.command) {
      process.stdout.write(globalHelp());
      return g.help ? 0 : 1;
    }
    const entry = COMMANDS.find((c) => c.name === g.command);
    if (!entry) throw new UsageError(`unknown command '${g.command}'`);
    command = await entry.load();
    // Only before `--`: what follows is a command's (`acetate exec web -- ls -h`).
    const own = g.rest.includes('--') ? g.rest.slice(0, g.rest.indexOf('--')) : g.rest;
    if (g.help || own.includes('--help') || own.includes('-h')) {
      print(process.stdout, command.usage);
      return 0;
    }
    // The node's default disk reaches every normalization (files, git, Kubernetes) through the environment, as $ACETATE_DEFAULT_DISK does.
    if (g.defaultDisk !== undefined) process.env.ACETATE_DEFAULT_DISK = g.defaultDisk;
    const diskProblem = defaultDiskProblem();
    if (diskProblem) throw new UsageError(diskProblem);
    // Bad network flags are refused before anything is read or written (validate and plan too).
    const netProblem = nodeNetworkFlagProblem({ bridge: g.bridge, subnet: g.subnet }, process.env, readNodeRoutes());
    if (netProblem) {
      print(process.stderr, `acetate: ${netProblem}`);
      return 1;
    }
    let registry: number | undefined;
    try {
      registry = registryTimeoutMs(g.registryTimeout);
    } catch (err) {
      throw new UsageError(messageOf(err), { cause: err });
    }
    // So are bad user namespace options: one line naming the flag or variable.
    let isolation;
    try {
      isolation = isolationSettingsFromEnv(process.env, { hostUsers: g.hostUsers, usernsPool: g.usernsPool });
      // The security levels read the same default (policy/node-levels.ts thisNodeSecurity).
      if (g.hostUsers !== undefined) process.env.ACETATE_HOST_USERS = String(isolation.hostUsersDefault);
    } catch (err) {
      print(process.stderr, `acetate: ${terminalLines(messageOf(err))}`);
      return 1;
    }
    const stateDir = resolveStateDir(g.stateDir);
    return await command.run(
      g.rest,
      createContext(
        stateDir,
        resolveRunDir(stateDir, g.runDir),
        { bridge: g.bridge, subnet: g.subnet },
        registry !== undefined ? { registryTimeoutMs: registry } : {},
        isolation,
      ),
    );
  } catch (err) {
    if (err instanceof UsageError) {
      print(process.stderr, `acetate: ${terminalLines(err.message)}`);
      print(process.stderr, command ? `Run 'acetate ${command.name} --help' for usage.` : "Run 'acetate --help' for usage.");
      return 1;
    }
    if (err instanceof RuntimeUnavailableError) {
      print(process.stderr, `acetate: ${terminalLines(err.message)}`);
      return 1;
    }
    if (err instanceof ActionError) {
      print(process.stderr, `acetate: ${terminalLines(err.message)}`);
      return 1;
    }
    // Errors quote what registries and containers said: escaped and bounded (an index of 17k platforms is not 441 KB here).
    print(
      process.stderr,
      `acetate: ${terminalLines(messageOf(err))}${process.env.ACETATE_DEBUG ? `\n${terminalLines(String((err as Error).stack), 65536)}` : ''}`,
    );
    return 1;
  }
}

// Not a top-level await: the bundle bin/acetate loads is CommonJS (scripts/bundle.mjs), which has
// none. A failure until main settles: should the event loop empty with main still pending (a bug:
// nothing left to wait on), the process must not exit 0, as an unsettled top-level await did not
// (13), and systemd's Restart=on-failure restarts `run`.
process.exitCode = 1;
main(process.argv.slice(2)).then(
  (exitCode) => {
    process.exitCode = exitCode;
  },
  (err: unknown) => {
    print(process.stderr, `acetate: ${terminalLines(messageOf(err))}`);
    process.exitCode = 1;
  },
);
