/** Builds the CLI context: state dir, and the runtime opened lazily after preflight checks. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CliContext } from './command.js';
import { RuncRuntime } from '../runtime/runc/runc-runtime.js';
import { TemplateStore } from '../runtime/templates.js';

export const DEFAULT_STATE_DIR = '/var/lib/acetate';

export function resolveStateDir(flag?: string): string {
  return path.resolve(flag ?? process.env.ACETATE_STATE_DIR ?? DEFAULT_STATE_DIR);
}

export function createContext(stateDir: string): CliContext {
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
        const runtime = new RuncRuntime({ stateDir, templates, runcPath: process.env.ACETATE_RUNC || undefined, conmonPath: process.env.ACETATE_CONMON || undefined });
        await runtime.preflight();
        await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
        return { runtime, templates };
      })();
      return opened;
    },
  };
}
