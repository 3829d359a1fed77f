/**
 * What the `host` template hides: it is the node's operating system (programs, libraries,
 * configuration), not the node's data. Its lower layer is the node's whole `/`, so what belongs to
 * the node or to other tenants is covered inside the container's own mount namespace, the way runc
 * covers /proc/kcore (maskedPaths): an empty tmpfs over a directory, /dev/null over a file. Nothing
 * is mounted or written on the node, and nothing outlives the container.
 *
 * Why a list of what to hide rather than a list of what to show: the overlay's lower layer must be
 * one directory tree, so an allowlist would still be carried out as "cover everything else"; a
 * short denylist of well-known places reads clearer and keeps /opt, /usr/local, /etc working.
 * What the list cannot name (a state dir of another program in an odd place) stays visible: add it
 * per node with ACETATE_HOST_HIDE. Data belongs in /srv, /mnt, /media, /home, which are hidden.
 *
 * Two kinds:
 *  - private: an empty, writable tmpfs of the container's own (/run, /tmp, /var/tmp, /var/log,
 *    /root, /home): programs still work, and the node's files and Unix sockets there are gone;
 *  - hidden: an empty read-only tmpfs (directory) or /dev/null (file).
 * acetate's own state and run dirs (the configured ones and the defaults) are always hidden and
 * cannot be shown.
 */
import { lstat, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { OciMount } from './runc/oci-types.js';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from './runc/paths.js';

export type MaskKind = 'private' | 'hidden';

export interface MaskRule {
  /** Absolute path in the node's root; a `*` in the last component matches names in that dir. */
  path: string;
  kind: MaskKind;
  why: string;
}

const PRIVATE: MaskRule[] = [
  { path: '/run', kind: 'private', why: "the node's control sockets (containerd, docker, systemd, dbus) and runtime state" },
  { path: '/var/run', kind: 'private', why: 'the same as /run where it is not a symlink' },
  { path: '/tmp', kind: 'private', why: "other programs' temporary files and sockets (also state dirs kept there)" },
  { path: '/var/tmp', kind: 'private', why: "other programs' temporary files" },
  { path: '/var/log', kind: 'private', why: "the node's and other containers' logs" },
  { path: '/root', kind: 'private', why: "root's home: ssh keys, kubeconfigs (~/.kube), docker credentials" },
  { path: '/home', kind: 'private', why: "users' homes: ssh keys, kubeconfigs, credentials" },
];

const HIDDEN: MaskRule[] = [
  { path: '/etc/shadow', kind: 'hidden', why: 'password hashes' },
  { path: '/etc/gshadow', kind: 'hidden', why: 'group password hashes' },
  { path: '/etc/shadow-', kind: 'hidden', why: 'backup of the password hashes' },
  { path: '/etc/gshadow-', kind: 'hidden', why: 'backup of the group password hashes' },
  { path: '/etc/security/opasswd', kind: 'hidden', why: 'old password hashes' },
  { path: '/var/backups', kind: 'hidden', why: 'backups of /etc/shadow and others' },
  { path: '/etc/ssh/ssh_host_*key', kind: 'hidden', why: 'ssh host private keys' },
  { path: '/etc/ssl/private', kind: 'hidden', why: 'TLS private keys' },
  { path: '/etc/krb5.keytab', kind: 'hidden', why: 'Kerberos keys' },
  { path: '/etc/kubernetes', kind: 'hidden', why: 'kubeconfigs (admin.conf, kubelet.conf) and cluster PKI' },
  { path: '/etc/rancher', kind: 'hidden', why: 'k3s/rke2 kubeconfigs and tokens' },
  { path: '/etc/docker', kind: 'hidden', why: "docker's daemon config and registry certificates" },
  { path: '/etc/containerd', kind: 'hidden', why: "containerd's config (registry credentials)" },
  { path: '/etc/containers/auth.json', kind: 'hidden', why: 'registry credentials' },
  { path: '/var/lib/kubelet', kind: 'hidden', why: "kubelet's credentials, pods' volumes and secrets" },
  { path: '/var/lib/containerd', kind: 'hidden', why: "containerd's images and containers" },
  { path: '/var/lib/docker', kind: 'hidden', why: "docker's images, containers and volumes" },
  { path: '/var/lib/containers', kind: 'hidden', why: "podman's and CRI-O's storage" },
  { path: '/var/lib/lxc', kind: 'hidden', why: "LXC's containers" },
  { path: '/var/lib/lxd', kind: 'hidden', why: "LXD's containers" },
  { path: '/var/lib/incus', kind: 'hidden', why: "Incus' containers" },
  { path: '/var/lib/vz', kind: 'hidden', why: "Virtuozzo/OpenVZ containers" },
  { path: '/var/lib/machines', kind: 'hidden', why: "systemd-nspawn's machines" },
  { path: '/var/lib/libvirt', kind: 'hidden', why: "libvirt's virtual machine disks" },
  { path: '/var/lib/rancher', kind: 'hidden', why: 'k3s/rke2 state, tokens and containerd' },
  { path: '/var/lib/etcd', kind: 'hidden', why: "etcd's data (the cluster's secrets)" },
  { path: '/var/lib/cni', kind: 'hidden', why: 'CNI plugins\' IP allocations' },
  { path: '/var/lib/private', kind: 'hidden', why: "systemd DynamicUser services' state" },
  { path: '/var/lib/systemd/credential.secret', kind: 'hidden', why: "systemd's credential encryption key" },
  { path: '/var/mail', kind: 'hidden', why: "users' mail" },
  { path: '/var/spool', kind: 'hidden', why: 'mail, cron tables and print queues' },
  { path: '/srv', kind: 'hidden', why: "the node's served data" },
  { path: '/mnt', kind: 'hidden', why: 'mounted volumes' },
  { path: '/media', kind: 'hidden', why: 'mounted removable media' },
  { path: DEFAULT_STATE_DIR, kind: 'hidden', why: "acetate's default state dir (containers' private areas, records, logs)" },
  { path: DEFAULT_RUN_DIR, kind: 'hidden', why: "acetate's default run dir (runc state, bundles, conmon's files)" },
];

/** The built-in list (without the configured state and run dirs, which are always added). */
export const DEFAULT_MASKS: readonly MaskRule[] = [...PRIVATE, ...HIDDEN];

export interface HostIsolationOptions {
  stateDir: string;
  runDir: string;
  /** More paths to hide on this node (ACETATE_HOST_HIDE). */
  hide?: readonly string[];
  /** Default entries to show on this node after all (ACETATE_HOST_SHOW); never the state/run dirs. */
  show?: readonly string[];
}

/** `a:b:c` (as in $PATH) → absolute normalized paths. */
export function parsePathList(value: string | undefined): string[] {
  return (value ?? '')
    .split(':')
    .map((p) => p.trim())
    .filter((p) => p.startsWith('/'))
    .map((p) => path.posix.normalize(p).replace(/(.)\/+$/, '$1'));
}

/** The rules in force on this node: the defaults minus `show`, plus `hide` and the own dirs. */
export function hostMaskRules(o: HostIsolationOptions): MaskRule[] {
  const show = new Set(o.show ?? []);
  const own: MaskRule[] = [
    { path: path.resolve(o.stateDir), kind: 'hidden', why: "acetate's state dir (containers' private areas, records, logs)" },
    { path: path.resolve(o.runDir), kind: 'hidden', why: "acetate's run dir (runc state, bundles, conmon's files)" },
  ];
  const rules = [
    ...DEFAULT_MASKS.filter((r) => !show.has(r.path)),
    ...(o.hide ?? []).map((p): MaskRule => ({ path: p, kind: 'hidden', why: 'hidden on this node (ACETATE_HOST_HIDE)' })),
    ...own,
  ];
  const seen = new Set<string>();
  return rules.filter((r) => !seen.has(r.path) && seen.add(r.path));
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
}

/** Paths of one rule that exist in the node's root, resolved (symlinks followed, inside hostRoot). */
async function expand(rule: MaskRule, hostRoot: string): Promise<{ path: string; dir: boolean }[]> {
  const under = (p: string) => path.join(hostRoot, p);
  let candidates = [rule.path];
  const base = path.posix.basename(rule.path);
  if (base.includes('*')) {
    const dir = path.posix.dirname(rule.path);
    const re = globToRegExp(base);
    candidates = (await readdir(under(dir)).catch(() => [] as string[])).filter((n) => re.test(n)).map((n) => path.posix.join(dir, n));
  }
  const out: { path: string; dir: boolean }[] = [];
  for (const c of candidates) {
    const st = await lstat(under(c)).catch(() => undefined);
    if (!st) continue;
    let p = c;
    if (st.isSymbolicLink()) {
      // e.g. /var/run -> /run: cover where it leads (inside the node's root), not the link.
      const real = await realpath(under(c)).catch(() => undefined);
      const root = hostRoot === '/' ? '' : hostRoot;
      if (!real || (root && !real.startsWith(`${root}/`))) continue;
      p = real.slice(root.length) || '/';
      if (p === '/') continue;
    }
    const target = st.isSymbolicLink() ? await lstat(under(p)).catch(() => undefined) : st;
    if (!target) continue;
    out.push({ path: p, dir: target.isDirectory() });
  }
  return out;
}

export interface ResolvedMask extends MaskRule {
  /** What is covered on this node (a rule may match nothing, or several files). */
  covers: { path: string; dir: boolean }[];
}

/** The rules with what each covers on this node (for `template describe host` and the mounts). */
export async function resolveHostMasks(rules: readonly MaskRule[], hostRoot: string): Promise<ResolvedMask[]> {
  return Promise.all(rules.map(async (r) => ({ ...r, covers: await expand(r, hostRoot) })));
}

/** OCI mounts that carry out the masks inside the container's mount namespace. */
export function isolationMounts(masks: readonly ResolvedMask[]): OciMount[] {
  const all = masks.flatMap((m) => m.covers.map((c) => ({ ...c, kind: m.kind })));
  // Parents first; what lies under a covered dir is already gone (and a read-only tmpfs could
  // not take a mount point for it).
  all.sort((a, b) => a.path.split('/').length - b.path.split('/').length);
  const out: OciMount[] = [];
  const dirs: string[] = [];
  for (const c of all) {
    if (dirs.some((d) => c.path === d || c.path.startsWith(`${d}/`))) continue;
    if (!c.dir) {
      out.push({ destination: c.path, type: 'bind', source: '/dev/null', options: ['bind', 'ro', 'nosuid', 'noexec', 'nodev'] });
      continue;
    }
    dirs.push(c.path);
    if (c.kind === 'private') {
      const mode = c.path === '/tmp' || c.path === '/var/tmp' ? '1777' : c.path === '/root' ? '700' : '755';
      out.push({ destination: c.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', `mode=${mode}`] });
    } else {
      out.push({ destination: c.path, type: 'tmpfs', source: 'tmpfs', options: ['ro', 'nosuid', 'nodev', 'noexec', 'size=4k', 'mode=755'] });
    }
  }
  return out;
}
