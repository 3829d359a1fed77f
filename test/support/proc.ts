/** What a user checks about a container's process from the host: alive, its cgroup limits, /proc/<pid>/status. */
import { readFile } from 'node:fs/promises';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup v1 path of `pid` for a controller, e.g. memory → /acetate-xxxx/default_web. */
export async function cgroupPath(pid: number, controller: string): Promise<string> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  for (const line of text.trim().split('\n')) {
    const [, ctrls, p] = line.split(':');
    if (ctrls!.split(',').includes(controller)) return p!;
  }
  throw new Error(`pid ${pid} has no ${controller} cgroup`);
}

export async function cgroupValue(pid: number, controller: string, file: string): Promise<string> {
  return (await readFile(`/sys/fs/cgroup/${controller}${await cgroupPath(pid, controller)}/${file}`, 'utf8')).trim();
}

/** The fields of /proc/<pid>/status (Uid, Seccomp, CapBnd...), by name. */
export async function procStatus(pid: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await readFile(`/proc/${pid}/status`, 'utf8')).split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}
