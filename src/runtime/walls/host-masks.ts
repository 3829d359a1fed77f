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
import type { OciMount } from './oci-mount.js';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../default-dirs.js';

/** The built-in template that is the node's own `/` (see ../runc/templates.ts). */
export const HOST_TEMPLATE = 'host';

export type MaskKind = 'private' | 'hidden';

export interface MaskRule {
  /** Absolute path in the node's root; a `*` in the last component matches names in that dir. */
  path: string;
  kind: MaskKind;
  why: string;
}

/** [path, why] pairs of one kind, as MaskRules. */
function rules(kind: MaskKind, pairs: [string, string][]): MaskRule[] {
  return pairs.map(([where, why]) => ({ path: where, kind, why }));
}

const PRIVATE = rules('private', [
  ['/run', "the node's control sockets (containerd, docker, systemd, dbus) and runtime state"],
  ['/var/run', 'the same as /run where it is not a symlink'],
  ['/tmp', "other programs' temporary files and sockets (also state dirs kept there)"],
  ['/var/tmp', "other programs' temporary files"],
  ['/var/log', "the node's and other containers' logs"],
  ['/root', "root's home: ssh keys, kubeconfigs (~/.kube), docker credentials"],
  ['/home', "users' homes: ssh keys, kubeconfigs, credentials"],
]);

const HIDDEN = rules('hidden', [
  ['/etc/shadow', 'password hashes'],
  ['/etc/gshadow', 'group password hashes'],
  ['/etc/shadow-', 'backup of the password hashes'],
  ['/etc/gshadow-', 'backup of the group password hashes'],
  ['/etc/security/opasswd', 'old password hashes'],
  ['/var/backups', 'backups of /etc/shadow and others'],
  ['/etc/ssh/ssh_host_*key', 'ssh host private keys'],
  ['/etc/ssl/private', 'TLS private keys'],
  ['/etc/krb5.keytab', 'Kerberos keys'],
  ['/etc/kubernetes', 'kubeconfigs (admin.conf, kubelet.conf) and cluster PKI'],
  ['/etc/rancher', 'k3s/rke2 kubeconfigs and tokens'],
  ['/etc/docker', "docker's daemon config and registry certificates"],
  ['/etc/containerd', "containerd's config (registry credentials)"],
  ['/etc/containers/auth.json', 'registry credentials'],
  ['/var/lib/kubelet', "kubelet's credentials, pods' volumes and secrets"],
  ['/var/lib/containerd', "containerd's images and containers"],
  ['/var/lib/docker', "docker's images, containers and volumes"],
  ['/var/lib/containers', "podman's and CRI-O's storage"],
  ['/var/lib/lxc', "LXC's containers"],
  ['/var/lib/lxd', "LXD's containers"],
  ['/var/lib/incus', "Incus' containers"],
  ['/var/lib/vz', 'Virtuozzo/OpenVZ containers'],
  ['/var/lib/machines', "systemd-nspawn's machines"],
  ['/var/lib/libvirt', "libvirt's virtual machine disks"],
  ['/var/lib/rancher', 'k3s/rke2 state, tokens and containerd'],
  ['/var/lib/etcd', "etcd's data (the cluster's secrets)"],
  ['/var/lib/cni', "CNI plugins' IP allocations"],
  ['/var/lib/private', "systemd DynamicUser services' state"],
  ['/var/lib/systemd/credential.secret', "systemd's credential encryption key"],
  ['/var/mail', "users' mail"],
  ['/var/spool', 'mail, cron tables and print queues'],
  ['/srv', "the node's served data"],
  ['/mnt', 'mounted volumes'],
  ['/media', 'mounted removable media'],
  [DEFAULT_STATE_DIR, "acetate's default state dir (containers' private areas, records, logs)"],
  [DEFAULT_RUN_DIR, "acetate's default run dir (runc state, bundles, conmon's files)"],
]);

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
