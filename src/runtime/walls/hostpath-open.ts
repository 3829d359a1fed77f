/**
 * The hostPaths of a start, opened once and bound as opened. Admission (validate, plan, the
 * Kubernetes source) checks the path as it was when the manifest was read; between then and any
 * later start (a restart by `run` or `apply`, days later) someone on the node may swap an allowed
 * dir for a symlink to `/etc`. So at every start each hostPath is opened here (O_PATH: no read
 * access is needed, nothing is followed afterwards), where the kernel says the opened dir lives
 * (readlink of /proc/self/fd/N, its d_path) is checked against acetate's own dirs and the
 * namespace's security level, and that very dir is bound (`mount --bind /proc/<this pid>/fd/N`:
 * mount(2) follows the magic link to the opened dir, not to whatever the name means now) at a
 * staging dir under the container's run dir (root's, 0700 up the way), which runc binds into the
 * container: a symlink planted after the check cannot change what is mounted. The staging mounts
 * go once runc has created the container (its mount namespace keeps its own copies), as the
 * idmapped layers do (idmap.ts). Why a staging mount and not /proc/<pid>/fd/N as runc's source:
 * runc mounts inside the container's new mount namespace, and the kernel refuses (EINVAL) a bind
 * from a mount of another namespace, which the opened fd's mount is.
 *
 * Why the kernel's own lookup and not a walk of O_NOFOLLOW opens: symlinks the node itself has
 * (/var/run → /run) stay usable, and the path checked is the opened dir's real place whatever the
 * walk met; the race a walk avoids (a name changing between check and mount) is closed by
 * binding the fd instead.
 */
import { closeSync, existsSync, lstatSync, openSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { mountsUnder, unmountAll } from '../../util/mounts.js';
import { hostPathAllowed, type SecurityLevel } from '../../policy/levels.js';
import { TransientError } from '../../contracts/errors.js';
import { OciConfigError } from './errors.js';
import type { OwnDir } from './hostpath-guard.js';

/** Linux O_PATH (the same value on x86_64 and arm64); Node's fs.constants leaves it out. */
const O_PATH = 0o10000000;

/** What the namespace of a container may mount at this moment (its enforced level, the node's allowlist). */
export interface HostPathRule {
  level: SecurityLevel;
  /** Node paths a baseline or restricted Container may mount (with what lies below). */
  allowedHostPaths: readonly string[];
  /** Where the level comes from, for messages (a namespace label, the node setting). */
  why: string;
}

/** The rule for a namespace, asked at each start (the level may have changed since admission). */
export type HostPathRules = (namespace: string) => HostPathRule;

/**
 * A start refused because a hostPath now leads where it must not. Retried with back-off (the
 * check runs again at each try), not terminal: the manifest is as admitted, the node changed,
 * and once its dir is put back the container starts again without anyone touching the manifest.
 */
export class HostPathRefusedError extends TransientError {
  /** The condition's reason (status.ts ReconcileError.reason). */
  readonly reason = 'HostPathRefused';
  constructor(
    readonly container: string,
    readonly field: string,
    readonly rule: string,
    detail: string,
  ) {
    super(`${container}: ${field}: ${detail} (rule ${rule}): not started, the container is kept`);
  }
}

export interface OpenedHostPaths {
  /** Of each spec.mounts[i]: /proc/<pid>/fd/N of the dir opened and checked. */
  sources: string[];
  /** Closes the fds (once staged). */
  close(): void;
}

/** Where a container's checked hostPaths are staged during a start: <container run dir>/hostpaths/<i>. */
export function hostPathStagingDir(containerRunDir: string): string {
  return path.join(containerRunDir, 'hostpaths');
}

/**
 * Unmounts and removes what is staged. `targets`: what this start staged (one `umount` for them
 * all, detached lazily: runc has its own copies, nothing waits on them); absent: whatever an
 * acetate killed mid-start left (read from mountinfo, only when the dir exists). Idempotent.
 */
export async function releaseStagedHostPaths(stagingDir: string, targets?: readonly string[]): Promise<void> {
  if (!existsSync(stagingDir)) return; // most starts and removals: no mountinfo read
  if (targets?.length) await exec('umount', ['--recursive', '--lazy', ...targets], { timeoutMs: 30_000 });
  else for (const m of await mountsUnder(stagingDir)) await unmountAll(m);
  // rmdir, never a recursive rm: should a target still be mounted, it fails (EBUSY) instead of
  // deleting the node's files through the bind.
  for (const n of await readdir(stagingDir)) await rmdir(path.join(stagingDir, n));
  await rmdir(stagingDir);
}

/**
 * Binds each opened dir at <stagingDir>/<i> (the fds' own dirs, see the file comment) and returns
 * those paths, runc's mount sources; the fds are closed either way. On error nothing stays mounted.
 */
export async function stageHostPaths(opened: OpenedHostPaths, stagingDir: string): Promise<string[]> {
  try {
    await releaseStagedHostPaths(stagingDir);
    const targets: string[] = [];
    for (const [i, source] of opened.sources.entries()) {
      const target = path.join(stagingDir, String(i));
      await mkdir(target, { recursive: true, mode: 0o700 });
      // --no-canonicalize: mount(8) must hand the magic link to mount(2) as it is, not the name it
      // reads as now. rprivate: the staging copy neither receives nor sends mounts of the node's
      // peers while it exists (runc's own bind of it is rprivate too).
      await exec('mount', ['--no-canonicalize', '--rbind', '--make-rprivate', source, target], { timeoutMs: 30_000 });
      targets.push(target);
    }
    return targets;
  } catch (err) {
    await releaseStagedHostPaths(stagingDir).catch(() => undefined);
    throw err;
  } finally {
    opened.close();
  }
}

function inside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** `seen` (acetate's view) as a node path: under hostRoot, without it. Undefined: not on the node's tree. */
function nodePathOf(seen: string, hostRoot: string): string | undefined {
  if (!seen.startsWith('/') || seen.endsWith(' (deleted)')) return undefined;
  const root = path.resolve(hostRoot);
  if (root === '/') return seen;
  if (seen === root) return '/';
  return seen.startsWith(`${root}/`) ? seen.slice(root.length) : undefined;
}

function realNodePath(p: string, hostRoot: string): string | undefined {
  try {
    return nodePathOf(realpathSync.native(path.join(hostRoot, p)), hostRoot);
  } catch {
    return undefined; // an allowed dir that does not exist allows nothing that exists
  }
}

/**
 * Where each allowed dir led the first time this process used it (the node setting is read at the
 * first start too: cli/context.ts), kept for the process's life. Why once and not at each check:
 * the opened hostPath's real place must lie under what the admin allowed, not under wherever the
 * entry points now; swapping the allowed dir itself for a symlink to /var/lib/victim would
 * otherwise move the allowlist with it (tester finding 7). Why resolved and not compared as
 * written: symlinks the node itself has (/var/run → /run) stay usable in the setting. A dir that
 * does not exist yet is resolved again at the next check (an admin may create it later).
 */
const allowedAtFirstUse = new Map<string, string>();

/**
 * The first symlink on `entry`'s path (the entry included) that is not root's, or undefined. Read at
 * every check: a process started after a swap would resolve the swapped entry afresh, and a
 * symlink only root could have made (the node's own) is what the admin may have meant, one
 * anyone else made is not.
 */
function foreignSymlink(entry: string, hostRoot: string): string | undefined {
  const parts = path.resolve(entry).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    try {
      const st = lstatSync(path.join(hostRoot, p));
      if (st.isSymbolicLink() && st.uid !== 0) return `${p} is a symlink owned by uid ${st.uid}, not root`;
    } catch {
      return undefined; // missing from here on: nothing more to follow
    }
  }
  return undefined;
}

/** The allowed dirs' node paths as first resolved (above); a dir led through a foreign symlink allows nothing. */
function allowedRealPaths(entries: readonly string[], hostRoot: string): { real: string[]; refusedEntries: string[] } {
  const real: string[] = [];
  const refusedEntries: string[] = [];
  for (const d of entries) {
    const why = foreignSymlink(d, hostRoot);
    if (why) {
      refusedEntries.push(`${d} (${why})`);
      continue;
    }
    const key = `${hostRoot}\0${d}`;
    let r = allowedAtFirstUse.get(key);
    if (r === undefined) {
      r = realNodePath(d, hostRoot);
      if (r !== undefined) allowedAtFirstUse.set(key, r);
    }
    real.push(r ?? d);
  }
  return { real, refusedEntries };
}

/**
 * Opens every mount's hostPath and checks where it leads; throws (closing what it opened) a
 * HostPathRefusedError naming the container, the field and the rule, or an OciConfigError for a
 * path that does not exist. `rule` undefined: no level (the node's own check only).
 */
export function openHostPaths(
  container: string,
  mounts: readonly { hostPath: string }[],
  opts: { hostRoot: string; own: readonly OwnDir[]; rule?: HostPathRule },
): OpenedHostPaths {
  const fds: number[] = [];
  const close = (): void => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  try {
    const allowed = opts.rule ? allowedRealPaths(opts.rule.allowedHostPaths, opts.hostRoot) : undefined;
    const sources = mounts.map((m, i) => {
      const field = `spec.mounts[${i}].hostPath`;
      let fd: number;
      try {
        fd = openSync(path.join(opts.hostRoot, m.hostPath), O_PATH);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist on this node' : `cannot be opened (${code ?? (err as Error).message})`;
        throw new OciConfigError(`${container}: ${field}: '${m.hostPath}' ${why}`, { cause: err });
      }
      fds.push(fd);
      const seen = readlinkSync(`/proc/self/fd/${fd}`);
      const onNode = nodePathOf(seen, opts.hostRoot);
      const via = onNode === m.hostPath ? '' : ` (it leads to ${JSON.stringify(seen)})`;
      if (onNode === undefined)
        throw new HostPathRefusedError(container, field, 'hostPathOnNode', `'${m.hostPath}'${via} is not on the node's filesystem tree`);
      const own = opts.own.find(({ dir }) => inside(seen, dir) || inside(dir, seen));
      if (own) throw new HostPathRefusedError(container, field, 'acetateDirs', `'${m.hostPath}'${via} holds or is inside acetate's ${own.what} ${own.dir}`);
      const rule = opts.rule;
      if (rule && rule.level !== 'privileged' && !hostPathAllowed(onNode, allowed?.real ?? [])) {
        const moved = rule.allowedHostPaths.filter((d) => {
          const now = realNodePath(d, opts.hostRoot);
          const then = allowedAtFirstUse.get(`${opts.hostRoot}\0${d}`);
          return now !== undefined && then !== undefined && now !== then;
        });
        const list = rule.allowedHostPaths.length
          ? `the node's allowed host paths (${rule.allowedHostPaths.join(', ')}, where they led when first used${
              moved.length ? `; ${moved.map((d) => `${d} now leads to ${realNodePath(d, opts.hostRoot)}`).join(', ')}, not followed` : ''
            }${allowed?.refusedEntries.length ? `; not counted: ${allowed.refusedEntries.join(', ')}` : ''})`
          : 'no host path (this node allows none)';
        throw new HostPathRefusedError(
          container,
          field,
          'hostPathVolumes',
          `'${m.hostPath}'${via} is outside ${list}, which security level ${rule.level} allows (${rule.why})`,
        );
      }
      return `/proc/${process.pid}/fd/${fd}`;
    });
    return { sources, close };
  } catch (err) {
    close();
    throw err;
  }
}
