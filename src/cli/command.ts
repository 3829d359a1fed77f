/** What every CLI command looks like. */
import type { Writable } from 'node:stream';
import type { Runtime } from '../runtime/runtime.js';
import type { TemplateStore } from '../runtime/runc/templates.js';

export interface CliContext {
  /** Holds templates, private areas, logs and status: what survives a reboot. */
  stateDir: string;
  /** The run dir (volatile: runc root, conmon files, caches); absent in tests that build a context of their own. */
  runDir?: string;
  /** Human output: escaped for terminals (see util/terminal-stream.ts). */
  stdout: Writable;
  stderr: Writable;
  /** The process's own stdout, for bytes that must pass unchanged (a container's log); default stdout. */
  rawStdout?: Writable;
  /** Opens the runtime (checks root and runc first). */
  openRuntime(): Promise<{ runtime: Runtime; templates: TemplateStore }>;
  /**
   * Takes the node lock of the state and run dirs for the rest of this process (commands that
   * change the node call it first; see runtime/node-lock.ts). Throws NodeLockBusyError naming the
   * holder, or waits for it with `wait`.
   */
  lockNode(opts: { wait: boolean; command: string }): Promise<void>;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[], ctx: CliContext): Promise<number>;
}

/** A usage error: printed with the command's usage, exit status 1. */
export class UsageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

export function print(stream: Writable, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}
