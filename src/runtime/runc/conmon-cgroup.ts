/**
 * Where each conmon lives: `<cgroup parent>/conmon` (e.g. `/acetate-1a2b3c4d/conmon`) beside the
 * containers' own cgroups, in the hierarchies systemd tracks processes by: name=systemd and the
 * unified (cgroup2) one on a v1/hybrid node, the single hierarchy on v2. So conmon is outside the
 * cgroup of the unit (or shell, or pod) that ran acetate, as Podman's cgroupfs manager puts its
 * conmons in `libpod_parent/conmon`: stopping or restarting acetate.service never signals a
 * conmon, and systemd does not count them as the unit's left-over processes.
 *
 * On a v1 node the other hierarchies (cpu, memory, pids...) are left as they are: they carry no
 * process tracking, and conmon's few hundred KiB stay accounted where acetate's are.
 *
 * conmon is born there: the runtime's launcher (conmon-launcher.ts) is moved in once and forks
 * every conmon, so the container's runc and the monitor inherit the cgroup too.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exists } from '../../util/exists.js';
import { CGROUP_ROOT, detectCgroupMode, removeCgroupDirIfEmpty } from './cgroups.js';

/** The name of the conmons' cgroup under the instance's cgroup parent (container ids all contain '_'). */
export const CONMON_CGROUP = 'conmon';

/** Hierarchy roots systemd tracks units' processes in (only those mounted here). */
export async function trackingHierarchies(root = CGROUP_ROOT): Promise<string[]> {
  if ((await detectCgroupMode(root)) === 'v2') return [root];
  const out: string[] = [];
  for (const name of ['systemd', 'unified']) if (await exists(path.join(root, name, 'cgroup.procs'))) out.push(path.join(root, name));
  return out;
}

/** The conmons' cgroup dirs of an instance: `<hierarchy>/<cgroupParent>/conmon` per tracking hierarchy. */
export async function conmonCgroupDirs(cgroupParent: string, root = CGROUP_ROOT): Promise<string[]> {
  const rel = path.join(cgroupParent.replace(/^\/+/, ''), CONMON_CGROUP);
  return (await trackingHierarchies(root)).map((h) => path.join(h, rel));
}

/**
 * Moves `pid` (the conmon launcher, a port holder) into each cgroup dir, creating it when it is
 * not there (the instance's first start, or after the last destroy removed it): written first, made only on ENOENT, because a
 * recursive mkdir of a dir that exists is two thread-pool round trips for nothing.
 */
export async function joinCgroups(pid: number, dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    // Up to three makes: removed between the mkdir and the write (the last container's destroy
    // removing the empty parent, cleanup.ts), it is made again.
    const failed = (cause: unknown) => new Error(`cannot move process ${pid} into cgroup ${dir}`, { cause });
    for (let made = 0; ; made++) {
      try {
        await writeFile(path.join(dir, 'cgroup.procs'), `${pid}\n`);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || made === 3) throw failed(err);
        await mkdir(dir, { recursive: true }).catch((e: unknown) => {
          throw failed(e);
        });
      }
    }
  }
}

/** rmdir the conmons' cgroup where no conmon is left (before its parent's rmdir can succeed). */
export async function removeConmonCgroupsIfEmpty(cgroupParent: string, root = CGROUP_ROOT): Promise<void> {
  for (const dir of await conmonCgroupDirs(cgroupParent, root)) await removeCgroupDirIfEmpty(dir).catch(() => false);
}
