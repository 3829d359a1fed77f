/**
 * Builds the CLI context: state and run dirs, and the runtime opened lazily after preflight checks.
 * Opening the runtime writes nothing: read-only commands (plan, get, describe, logs, validate,
 * template list, image list) run on a state dir that does not exist yet and leave it so. The
 * dirs are made by lockNode, i.e. by the process that is about to change the node.
 */
import { promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import type { CliContext } from './command.js';
import type { RuncRuntime } from '../runtime/runc/runc-runtime.js';
import type { TemplateStore } from '../runtime/runc/templates.js';
import { DEFAULT_STATE_DIR, defaultRunDirOf } from '../runtime/runc/paths.js';
import { isolationSettingsFromEnv } from '../runtime/walls/settings.js';
import { INSTANCES_DIR, registerInstance } from '../runtime/walls/instances.js';
import { minFreeBytes } from '../runtime/free-space.js';
import type { IsolationSettings } from '../runtime/walls/walls.js';
import type { hostPathRulesOf } from './node-capacity.js';
import { setProtectedDirs } from '../api/protected-paths.js';
import { parseMemory } from '../api/quantity.js';
import { acquireNodeLock, type NodeLock } from '../runtime/node-lock.js';
import type { NodeNetworkOptions } from '../runtime/network/node-config.js';
import { TerminalSafeStream } from '../util/terminal-stream.js';
import { messageOf } from '../contracts/errors.js';

type HostPathRules = ReturnType<typeof hostPathRulesOf>;

export { DEFAULT_STATE_DIR, DEFAULT_RUN_DIR } from '../runtime/runc/paths.js';

export function resolveStateDir(flag?: string): string {
  const dir = path.resolve(flag || process.env.ACETATE_STATE_DIR || DEFAULT_STATE_DIR);
  // One spelling per state dir, its real path: the instance's id, cgroups, id records and claims
  // are keyed by it, and a symlinked spelling made a second instance of the same dir (one that
  // took the first's ranges for another's). No working instance had one: runc refuses a rootfs
  // under a symlink. The default keeps its name (its run dir is /run/acetate).
  if (dir === DEFAULT_STATE_DIR) return dir;
  return realPathOf(dir);
}

/** The real path of `dir`, or of its deepest existing parent with the rest appended (not made yet: the same spelling before and after). */
function realPathOf(dir: string): string {
  const rest: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      return path.join(realpathSync(d), ...rest.reverse());
    } catch {
      if (path.dirname(d) === d) return dir;
      rest.push(path.basename(d));
    }
  }
}

/** --run-dir, else $ACETATE_RUN_DIR, else /run/acetate for the default state dir and <stateDir>/run for others. */
export function resolveRunDir(stateDir: string, flag?: string): string {
  return path.resolve(flag || process.env.ACETATE_RUN_DIR || defaultRunDirOf(stateDir));
}

/** $ACETATE_LOG_SIZE_MAX (e.g. 16Mi): conmon keeps each container log under it (default 16 MiB). */
function logSizeMaxFromEnv(): number | undefined {
  const v = process.env.ACETATE_LOG_SIZE_MAX;
  if (!v) return undefined;
  try {
    return parseMemory(v);
  } catch (err) {
    throw new Error(`ACETATE_LOG_SIZE_MAX: '${v}' is not a size such as 16Mi`, { cause: err });
  }
}

export function createContext(
  stateDir: string,
  runDir = resolveRunDir(stateDir),
  network: NodeNetworkOptions = {},
  images: { registryTimeoutMs?: number } = {},
  isolation: IsolationSettings = isolationSettingsFromEnv(process.env),
): CliContext {
  // Manifests that mount these (or an ancestor) are refused at validation, naming the field.
  setProtectedDirs([
    { dir: stateDir, what: 'state dir' },
    { dir: runDir, what: 'run dir' },
  ]);
  let opened: Promise<{ runtime: RuncRuntime; templates: TemplateStore }> | undefined;
  let nodeRules: HostPathRules | undefined;
  let lock: NodeLock | undefined;
  const ctx: CliContext = {
    stateDir,
    runDir,
    stdout: new TerminalSafeStream(process.stdout),
    stderr: new TerminalSafeStream(process.stderr),
    rawStdout: process.stdout,
    openRuntime() {
      opened ??= (async () => {
        // Loaded here, not at the top: `get` and `plan` answered by a running loop (loop-view.ts)
        // never open the runtime, and loading it is a third of a short command's start.
        const [{ RuncRuntime }, { TemplateStore }, { imageStoreFromEnv }, { hostPathRulesOf }, { thisNodeSecurity }] = await Promise.all([
          import('../runtime/runc/runc-runtime.js'),
          import('../runtime/runc/templates.js'),
          import('../images/env.js'),
          import('./node-capacity.js'),
          import('../policy/node-levels.js'),
        ]);
        // A setting that cannot be read stops the command before anything runs, not at each create
        // after the plan's destroys were done.
        minFreeBytes(process.env);
        // ACETATE_HOST_ROOT: where the node's / is seen (the DaemonSet mounts it at /host).
        const templates = new TemplateStore({ stateDir, hostRoot: process.env.ACETATE_HOST_ROOT || undefined });
        // ACETATE_RUNC / ACETATE_CONMON / ACETATE_INIT: another runc, conmon or init binary (a wrapper, a newer build).
        const runtime = new RuncRuntime({
          stateDir,
          runDir,
          templates,
          // Until this process takes the node lock it writes nothing in the state dir (skopeo's HOME).
          images: imageStoreFromEnv(stateDir, process.env, {
            readOnly: () => !lock,
            ...(images.registryTimeoutMs !== undefined ? { registryTimeoutMs: images.registryTimeoutMs } : {}),
            lock: { onSharedWait: (file) => process.stderr.write(`acetate: waiting for \`acetate image rm|prune\` to release ${file}\n`) },
          }),
          runcPath: process.env.ACETATE_RUNC || undefined,
          conmonPath: process.env.ACETATE_CONMON || undefined,
          initPath: process.env.ACETATE_INIT || undefined,
          logSizeMax: logSizeMaxFromEnv(),
          isolation,
          network,
          // Every start (apply's and run's) checks where each hostPath leads then, by the node
          // setting (run in Kubernetes mode replaces it with the namespaces' labels). Read at the
          // first start: a setting that cannot be read refuses that start, never a looser check.
          hostPathRules: (namespace) => {
            nodeRules ??= hostPathRulesOf(thisNodeSecurity());
            return nodeRules(namespace);
          },
        });
        await runtime.preflight();
        return { runtime, templates };
      })();
      return opened;
    },
    async lockNode(opts) {
      if (lock) return;
      // Preflight first: "not root" or "runc missing" is a better first message than a lock error.
      await ctx.openRuntime();
      const { runtime } = await opened!;
      // The writer makes the dirs (the lock file lives in them), private to root.
      await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
      await fs.mkdir(runDir, { recursive: true, mode: 0o700 });
      // Known node-wide, so every instance's host-template containers hide this one's dirs (walls/instances.ts).
      await registerInstance({ stateDir: path.resolve(stateDir), runDir: path.resolve(runDir) }).catch((err: unknown) =>
        process.stderr.write(
          `acetate: cannot record this state dir in ${INSTANCES_DIR} (other instances' host-template containers may list it): ${messageOf(err)}\n`,
        ),
      );
      lock = await acquireNodeLock([stateDir, runDir], {
        ...opts,
        onWait: (h, file) => process.stderr.write(`acetate: waiting for ${h ? `pid ${h.pid} (${h.command})` : 'another acetate process'} to release ${file}\n`),
      });
      runtime.holdsNodeLock();
    },
  };
  return ctx;
}
