/** Builds the CLI context: state and run dirs, and the runtime opened lazily after preflight checks. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CliContext } from './command.js';
import { RuncRuntime } from '../runtime/runc/runc-runtime.js';
import { TemplateStore } from '../runtime/templates.js';
import { imageStoreFromEnv } from '../images/env.js';
import { DEFAULT_STATE_DIR, defaultRunDirOf } from '../runtime/runc/paths.js';

export { DEFAULT_STATE_DIR, DEFAULT_RUN_DIR } from '../runtime/runc/paths.js';

export function resolveStateDir(flag?: string): string {
  return path.resolve(flag || process.env.ACETATE_STATE_DIR || DEFAULT_STATE_DIR);
}

/** --run-dir, else $ACETATE_RUN_DIR, else /run/acetate for the default state dir and <stateDir>/run for others. */
export function resolveRunDir(stateDir: string, flag?: string): string {
  return path.resolve(flag || process.env.ACETATE_RUN_DIR || defaultRunDirOf(stateDir));
}

export function createContext(stateDir: string, runDir = resolveRunDir(stateDir)): CliContext {
  let opened: ReturnType<CliContext['openRuntime']> | undefined;
  return {
    stateDir,
    stdout: process.stdout,
    stderr: process.stderr,
    openRuntime() {
      opened ??= (async () => {
        // ACETATE_HOST_ROOT: where the node's / is seen (the DaemonSet mounts it at /host).
        const templates = new TemplateStore({ stateDir, hostRoot: process.env.ACETATE_HOST_ROOT || undefined });
        // ACETATE_RUNC / ACETATE_CONMON: another runc or conmon binary (a wrapper, a newer build).
        const runtime = new RuncRuntime({ stateDir, runDir, templates, images: imageStoreFromEnv(stateDir), runcPath: process.env.ACETATE_RUNC || undefined, conmonPath: process.env.ACETATE_CONMON || undefined });
        await runtime.preflight();
        await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
        await fs.mkdir(runDir, { recursive: true, mode: 0o700 });
        return { runtime, templates };
      })();
      return opened;
    },
  };
}
