/**
 * Runs a small Node script in a process of its own, to its end: what a test needs to see that
 * something does not keep a process (acetate) alive, or what a process with nothing else to do
 * gets. The script is killed after `timeoutMs` (then exitCode is null).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export async function runNodeScript(code: string, timeoutMs = 10_000): Promise<{ exitCode: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [exitCode] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { exitCode, stdout };
}

/** The absolute path of a module of dist/src (`runtime/walls/idmap.js`), for a script's import(). */
export function srcModule(relative: string): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src', relative);
}
