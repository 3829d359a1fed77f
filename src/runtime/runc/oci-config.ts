/**
 * The OCI runtime config (bundle/config.json) of a container, generated from its normalized spec.
 * Pure: every host-dependent input (paths, host rlimit, swap accounting) is passed in.
 */
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from '../../api/capabilities.js';
import path from 'node:path';
import type { NormalizedSpec } from '../../api/types.js';
import { ociLinuxResources } from './resources.js';
import type { OciSeccomp } from '../walls/seccomp.js';
import type { OciUserNamespace } from '../walls/userns.js';
import { MASKED_PATHS, READONLY_PATHS } from '../walls/masks.js';
import { resolveCapabilities } from '../walls/capabilities.js';
import { OciConfigError } from '../walls/errors.js';
import type { OciConfig, OciMount } from './oci-types.js';
import { argsWithInit, initMount } from './init.js';
import { ownerAnnotations } from './ownership.js';
import { imageProcess, MOUNT_DATA_MAX, type ImageProcessInput } from '../../images/oci-process.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Upper bound of RLIMIT_NOFILE given to containers (further capped by the host's hard limit). */
export const MAX_NOFILE = 1_048_576;

export { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, OciConfigError, resolveCapabilities };

export interface OciConfigInput {
  namespace: string;
  name: string;
  spec: NormalizedSpec;
  specHash: string;
  /** Absolute path of the root filesystem directory (root.path). */
  rootfsPath: string;
  /**
   * The overlay that becomes the container's `/`: mounted by runc on root.path inside the
   * container's own mount namespace, so the node never sees it and it cannot outlive the container.
   * Without it, root.path is used as it is (e.g. already mounted by the caller).
   */
  rootfsOverlay?: RootfsOverlay;
  /** e.g. `/acetate-1a2b3c4d/default_web`. */
  cgroupsPath: string;
  /** The host's hard RLIMIT_NOFILE; the container gets min(this, MAX_NOFILE). */
  hostNofileHard: number;
  /** cgroup v1 memory.memsw is available: the swap limit follows the memory limit. */
  swapAccounting: boolean;
  /**
   * Capabilities acetate itself may hand out (its bounding set, see procfs.readBoundingCapabilities).
   * The container gets no capability outside it (runc would fail with EPERM). Default: all.
   */
  boundingCapabilities?: readonly string[];
  /** Where the node's root filesystem is seen; hostPath mounts are resolved under it. Default `/`. */
  hostRoot?: string;
  /**
   * At a start: each spec.mounts[i]'s source as opened and checked (/proc/<pid>/fd/N, see
   * ../walls/hostpath-open.ts), so the dir mounted is the dir checked. Absent (a check): the path.
   */
  hostPathSources?: readonly string[];
  /** What the `host` template hides (see ../host-isolation.ts), mounted after the base mounts. */
  isolationMounts?: OciMount[];
  /**
   * Masked dirs bound to one empty read-only dir (../walls/empty-dir-masks.ts): not in
   * linux.maskedPaths, where runc would mount a tmpfs on each. Ignored when privileged (no masks).
   */
  maskMounts?: OciMount[];
  /** linux.seccomp (see seccomp.ts); none without it. */
  seccomp?: OciSeccomp;
  /** A user namespace with these id mappings (see userns.ts); the node's ids without it. */
  userNamespace?: OciUserNamespace;
  /** The static init binary on the node (see init.ts); run as PID 1 unless spec.init is false. */
  initPath?: string;
  /** network: bridge: the persistent namespace to join, and the /etc files written for it. */
  /** usernsPath: the user namespace that owns netnsPath (network/netns.ts), joined instead of a new one. */
  network?: { netnsPath: string; usernsPath?: string; etcFiles: { hosts: string; hostname: string; resolvConf: string } };
  /** The image's config, for a container made from an image (Entrypoint, Cmd, Env, WorkingDir, User). */
  image?: ImageProcessInput;
}

export interface RootfsOverlay {
  /** The template's root (read-only layer), or an image's layer dirs, topmost first. */
  lower: string | readonly string[];
  /** The private area: the container's writes. */
  upper: string;
  /** overlayfs's work dir, on the same filesystem as upper. */
  work: string;
}

/** Characters that would split overlay's option string (`,`) or its layer list (`:`). */
const OVERLAY_UNSAFE = /[,:\\\s]/;

/**
 * The mount at `/` that makes the container's root the template (or an image's layers, topmost
 * first) with the private area over it. `userxattr`: mounted inside a user namespace, overlayfs
 * cannot set trusted.* xattrs (opaque dirs, redirects) and keeps them as user.overlay.* instead.
 */
export function overlayRootMount(o: RootfsOverlay, opts: { userxattr?: boolean } = {}): OciMount {
  const lowers = typeof o.lower === 'string' ? [o.lower] : o.lower;
  for (const p of [...lowers, o.upper, o.work]) {
    if (!path.isAbsolute(p)) throw new OciConfigError(`overlay layer '${p}' must be absolute`);
    if (OVERLAY_UNSAFE.test(p)) throw new OciConfigError(`cannot use '${p}' in an overlay mount: the path must not contain ',', ':', '\\' or spaces`);
  }
  const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${o.upper}`, `workdir=${o.work}`, ...(opts.userxattr ? ['userxattr'] : [])];
  if (options.join(',').length >= MOUNT_DATA_MAX) {
    throw new OciConfigError(
      `the image's ${lowers.length} layers do not fit in overlayfs' mount options (${options.join(',').length} of ${MOUNT_DATA_MAX} bytes): use a shorter state dir or an image with fewer layers`,
    );
  }
  return { destination: '/', type: 'overlay', source: 'overlay', options };
}

/** A container path must be absolute and must not contain `..` (it could escape the rootfs). */
export function checkContainerPath(p: string): string {
  if (!p.startsWith('/')) throw new OciConfigError(`mount containerPath '${p}' must be absolute`);
  if (p.split('/').includes('..')) throw new OciConfigError(`mount containerPath '${p}' must not contain '..'`);
  const norm = path.posix.normalize(p).replace(/\/+$/, '');
  if (norm === '') throw new OciConfigError(`mount containerPath '${p}' cannot be the root directory`);
  return norm;
}

function envList(env: NormalizedSpec['env']): string[] {
  const map = new Map<string, string>();
  for (const e of env) map.set(e.name, e.value);
  if (!map.has('PATH')) map.set('PATH', DEFAULT_PATH);
  return [...map].map(([k, v]) => `${k}=${v}`);
}

function baseMounts(privileged: boolean): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
  ];
}

/**
 * The container's own cgroups at /sys/fs/cgroup (Docker's and Podman's default), read-only unless
 * privileged: with its cgroup namespace they are its own subtree, so what sizes itself from its
 * limits (the JVM, libuv, Go's GOMEMLIMIT helpers) finds them instead of the node's memory and
 * CPUs. runc mounts each v1 hierarchy of the node (or the v2 one). Not where /sys is the node's
 * bound (SYS_BIND: no cgroup namespace, so the node's tree is already there).
 */
function cgroupMount(privileged: boolean): OciMount {
  return { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] };
}

/**
 * In a user namespace sysfs can only be mounted by the owner of the network namespace: a container
 * in one it does not own gets the node's /sys bound read-only instead (as Podman does). Only a
 * bridge container set up by an older acetate is such now (network: host needs hostUsers: true).
 */
const SYS_BIND: OciMount = { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] };
/**
 * /etc/hosts, /etc/hostname, /etc/resolv.conf of a bridge container: files acetate writes (see
 * network/etc-files.ts), bound read-only. They live in the run dir, outside the private area and
 * any disk limit (a tmpfs on most nodes: node RAM), so a writable bind let a 32Mi container write
 * 150 MB there. Docker, Podman and Kubernetes bind them writable (from a dir on disk); here the
 * container reads them, acetate rewrites them (the hosts file when the address changes), and a
 * container that needs other entries mounts its own file over them (spec.mounts wins).
 */
function etcMounts(f: { hosts: string; hostname: string; resolvConf: string }): OciMount[] {
  return (
    [
      ['/etc/hosts', f.hosts],
      ['/etc/hostname', f.hostname],
      ['/etc/resolv.conf', f.resolvConf],
    ] as const
  ).map(([destination, source]) => ({
    destination,
    type: 'bind',
    source,
    options: ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec', 'ro'],
  }));
}

export function buildOciConfig(input: OciConfigInput): OciConfig {
  const { spec } = input;
  if (spec.command.length === 0 && !input.image) throw new OciConfigError('command must not be empty');
  if (!path.isAbsolute(input.rootfsPath)) throw new OciConfigError(`rootfs path '${input.rootfsPath}' must be absolute`);
  const fromImage = input.image ? imageProcess(spec, input.image) : undefined;
  const cwd = fromImage?.cwd ?? (spec.workingDir || '/');
  processUser(spec.security, fromImage?.user); // refuses runAsNonRoot with uid 0 before anything else is built
  if (!cwd.startsWith('/')) throw new OciConfigError(`workingDir '${cwd}' must be absolute`);

  const binds: OciMount[] = spec.mounts.map((m, i) => {
    if (!m.hostPath.startsWith('/')) throw new OciConfigError(`mount hostPath '${m.hostPath}' must be absolute`);
    return {
      destination: checkContainerPath(m.containerPath),
      type: 'bind',
      source: input.hostPathSources?.[i] ?? (input.hostRoot && input.hostRoot !== '/' ? path.join(input.hostRoot, m.hostPath) : m.hostPath),
      options: ['rbind', 'rprivate', ...(m.readOnly ? ['ro'] : [])],
    };
  });

  const bounding = input.boundingCapabilities;
  const caps = resolveCapabilities(spec.security).filter((c) => !bounding || bounding.includes(c));
  const nofile = Math.min(input.hostNofileHard, MAX_NOFILE);
  const netnsPath = spec.network === 'bridge' ? input.network?.netnsPath : undefined;
  // Joined with the network namespace it owns: one of the container's range, made beside it.
  const usernsPath = netnsPath && input.userNamespace ? input.network?.usernsPath : undefined;
  // A network namespace the container's user namespace does not own (the node's, or a bridge one
  // made by an older acetate, owned by the node's user namespace).
  const foreignNetns = spec.network === 'host' || (netnsPath !== undefined && usernsPath === undefined);
  // Then /sys is the node's, bound read-only (SYS_BIND: no sysfs can be mounted there), and with it
  // the node's /sys/fs/cgroup: a cgroup namespace would make /proc/self/cgroup say "/" there, and
  // what reads its limits through that path (libuv, the JVM, Go's GOMEMLIMIT helpers) would read
  // the node's root cgroup, unlimited. Such a container keeps the node's cgroup namespace until a
  // cgroup file system of its own is mounted at /sys/fs/cgroup (as Docker does).
  const sysBound = !!input.userNamespace && foreignNetns;
  const namespaces: { type: string; path?: string }[] = [
    'pid',
    'ipc',
    'uts',
    'mount',
    // Its own cgroup namespace (Docker's and Podman's default on cgroup v2, Kubernetes' with
    // containerd): /proc/self/cgroup shows "/", not the node's paths (acetate's instance, the key).
    ...(sysBound ? [] : ['cgroup']),
    ...(spec.network === 'host' ? [] : ['network']),
    ...(input.userNamespace ? ['user'] : []),
  ].map((type) => ({ type }));
  if (netnsPath) namespaces.find((n) => n.type === 'network')!.path = netnsPath;
  // runc joins it first (its uid/gid maps, still given below, are then not written again).
  if (usernsPath) namespaces.find((n) => n.type === 'user')!.path = usernsPath;
  const etc = netnsPath ? etcMounts(input.network!.etcFiles) : [];
  const privileged = spec.security.privileged;
  const maskMounts = privileged ? [] : (input.maskMounts ?? []);
  // The runtime refuses a spec that wants an init when the node has none (see ociConfigInput).
  const useInit = spec.init !== false && input.initPath !== undefined;

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: processUser(spec.security, fromImage?.user),
      args: useInit ? argsWithInit(fromImage?.args ?? [...spec.command, ...spec.args]) : (fromImage?.args ?? [...spec.command, ...spec.args]),
      env: envList(fromImage?.env ?? spec.env),
      cwd,
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }],
      noNewPrivileges: spec.security.noNewPrivileges,
    },
    root: { path: input.rootfsPath, readonly: false },
    hostname: spec.hostname || input.name,
    mounts: [
      ...(input.rootfsOverlay ? [overlayRootMount(input.rootfsOverlay, { userxattr: !!input.userNamespace })] : []),
      ...baseMounts(privileged).map((m) => (sysBound && m.type === 'sysfs' ? SYS_BIND : m)),
      ...(sysBound ? [] : [cgroupMount(privileged)]),
      ...(input.isolationMounts ?? []),
      ...etc,
      ...binds,
      // After every mount of the spec, as runc applies maskedPaths: a bind at /sys (or under it) is masked too.
      ...maskMounts,
      ...(useInit ? [initMount(input.initPath!)] : []),
    ],
    annotations: { ...ownerAnnotations(input.namespace, input.name), 'acetate.dev/spec-hash': input.specHash },
    linux: {
      cgroupsPath: input.cgroupsPath,
      resources: ociLinuxResources(spec.resources, { swapAccounting: input.swapAccounting, privileged }),
      namespaces,
      maskedPaths: privileged ? [] : MASKED_PATHS.filter((p) => !maskMounts.some((m) => m.destination === p)),
      readonlyPaths: privileged ? [] : [...READONLY_PATHS],
      ...(input.seccomp ? { seccomp: input.seccomp } : {}),
      ...(input.userNamespace ? { uidMappings: input.userNamespace.uidMappings, gidMappings: input.userNamespace.gidMappings } : {}),
    },
  };
}

/**
 * The process's uid and gid: securityContext.runAsUser / runAsGroup over the image's User (else
 * 0:0); runAsUser alone gives gid 0, as Kubernetes does. runAsNonRoot refuses uid 0 here, when the
 * image's user is known (the kubelet's check: "container has runAsNonRoot and image will run as root").
 */
export function processUser(security: NormalizedSpec['security'], fromImage: { uid: number; gid: number } | undefined): { uid: number; gid: number } {
  const base = fromImage ?? { uid: 0, gid: 0 };
  const uid = security.runAsUser ?? base.uid;
  const gid = security.runAsGroup ?? (security.runAsUser !== undefined ? 0 : base.gid);
  if (security.runAsNonRoot && uid === 0)
    throw new OciConfigError(
      `securityContext.runAsNonRoot is true but the process would run as uid 0 (${security.runAsUser === 0 ? 'runAsUser: 0' : fromImage ? "the image's User" : 'no runAsUser'}): set runAsUser to a non-zero uid`,
    );
  return { uid, gid };
}
