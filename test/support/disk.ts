/** What a user checks about a container's disk (resources.disk) from the host. */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec, ExecError } from '../../src/util/exec.js';
import { mountsUnder } from '../../src/util/mounts.js';
import { LAYERS_DIR_PREFIX } from '../../src/runtime/walls/host-layer.js';

export const MI = 2 ** 20;

/** Runs a shell script inside the container's mount namespace (its root filesystem). */
export async function inContainer(pid: number, script: string): Promise<{ code: number; out: string }> {
  try {
    const r = await exec('nsenter', ['-t', String(pid), '-m', '--', '/bin/sh', '-c', script], { timeoutMs: 120_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    if (err instanceof ExecError && err.exitCode !== null) return { code: err.exitCode, out: err.stdout + err.stderr };
    throw err;
  }
}

/** `df -B1 /` inside the container: the size and use of its root (the overlay reports its upper filesystem). */
export async function dfRoot(pid: number): Promise<{ size: number; used: number }> {
  const { out } = await inContainer(pid, 'df -B1 / | tail -n 1');
  const f = out.trim().split(/\s+/);
  return { size: Number(f[1]), used: Number(f[2]) };
}

/** Bytes of disk the node actually gave a file (sparse images allocate what is written). */
export async function allocatedBytes(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

/** The /proc/<pid>/mountinfo lines that mention `text`. */
export async function mountLines(pid: number | 'self', text: string): Promise<string[]> {
  return (await readFile(`/proc/${pid}/mountinfo`, 'utf8')).split('\n').filter((l) => l.includes(text));
}

/**
 * What is mounted on the node under `dir` but the host view's layers' tmpfs (<runDir>/host-layers-<instance>),
 * which stays while the instance has a container (host-layer.ts): a container's own mounts are
 * made in its mount namespace, none on the node.
 */
export async function nodeMountsBesideLayers(dir: string): Promise<string[]> {
  return (await mountsUnder(dir)).filter((m) => !path.basename(m).startsWith(LAYERS_DIR_PREFIX));
}
