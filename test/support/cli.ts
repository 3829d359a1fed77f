/** Runs the real acetate CLI (dist/src/cli/main.js) as a child process, as a user would. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/api/crd.js';

export const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
/** What a user installs and runs (a script that imports CLI). */
export const BIN = path.join(PACKAGE_ROOT, 'bin', 'acetate');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `acetate --state-dir <stateDir> ...args` to its end; entry: the script node runs (default CLI, BIN as installed). */
export function runCli(args: string[], opts: { stateDir: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; entry?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.entry ?? CLI, '--state-dir', opts.stateDir, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
