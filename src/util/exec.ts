/**
 * Run a binary with arguments (no shell) and capture its output. A failure is an ExecError whose
 * message names the command and carries its stderr, with the underlying error as `cause`.
 */
import { spawn } from 'node:child_process';

export interface ExecOptions {
  /** Written to the child's stdin (which is otherwise /dev/null). */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the child (SIGKILL) and fail after this long. Default: no timeout. */
  timeoutMs?: number;
  /** Exit codes that count as success. Default: [0]. */
  okExitCodes?: readonly number[];
  /** Stop collecting output beyond this many bytes per stream (the rest is dropped). Default 16 MiB. */
  maxBuffer?: number;
  /** Kills the child (SIGKILL) when aborted; the error then says aborted. */
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Quote a command line for messages (not for a shell). */
export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (a === '' || /[\s"'\\$`]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

export class ExecError extends Error {
  readonly file: string;
  readonly args: readonly string[];
  readonly command: string;
  /** null when the child was killed by a signal or never started. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(init: {
    file: string;
    args: readonly string[];
    exitCode: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    reason: string;
    cause?: unknown;
  }) {
    const command = formatCommand(init.file, init.args);
    const detail = init.stderr.trim() || init.stdout.trim();
    super(`${command}: ${init.reason}${detail ? `: ${detail}` : ''}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ExecError';
    this.file = init.file;
    this.args = init.args;
    this.command = command;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
  }
}

const DEFAULT_MAX_BUFFER = 16 * 1024 * 1024;

export function exec(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const okExitCodes = opts.okExitCodes ?? [0];
  const maxBuffer = opts.maxBuffer ?? DEFAULT_MAX_BUFFER;
  return new Promise<ExecResult>((resolve, reject) => {
    let child;
    try {
      child = spawn(file, args, {
        cwd: opts.cwd,
        env: opts.env,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      reject(new ExecError({ file, args, exitCode: null, signal: null, stdout: '', stderr: '', reason: 'could not start', cause: err }));
      return;
    }
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout?.on('data', (b: Buffer) => {
      if (outLen < maxBuffer) out.push(b);
      outLen += b.length;
    });
    child.stderr?.on('data', (b: Buffer) => {
      if (errLen < maxBuffer) errOut.push(b);
      errLen += b.length;
    });
    let timedOut = false;
    let spawnError: Error | undefined;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGKILL');
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      spawnError = err;
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        /* the child may exit without reading its input */
      });
      child.stdin.end(opts.input);
    }
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(errOut).toString('utf8');
      const base = { file, args, exitCode: code, signal, stdout, stderr };
      if (spawnError) {
        const reason = (spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? 'command not found' : 'could not start';
        reject(new ExecError({ ...base, reason, cause: spawnError }));
      } else if (aborted) {
        reject(new ExecError({ ...base, reason: 'aborted' }));
      } else if (timedOut) {
        reject(new ExecError({ ...base, reason: `timed out after ${opts.timeoutMs} ms` }));
      } else if (code === null) {
        reject(new ExecError({ ...base, reason: `killed by ${signal ?? 'a signal'}` }));
      } else if (!okExitCodes.includes(code)) {
        reject(new ExecError({ ...base, reason: `exit code ${code}` }));
      } else {
        resolve({ stdout, stderr, exitCode: code });
      }
    });
  });
}
