/**
 * What the `host` template shows: the node's operating system (programs, libraries, configuration,
 * the package manager's state), not the node's data. An allowlist, decided per place:
 *
 *  - filtered places (`/`, `/var`, `/var/lib`, `/var/cache`, `/opt`, `/usr/local`): an entry is shown only if the
 *    OS owns it. In `/` and `/var` those are the FHS' OS dirs (usr, etc, lib, …); in `/var/lib`,
 *    `/var/cache`, `/opt` and `/usr/local` those a package installed (and inside those, again only
 *    what a package installed, but for the package managers' own state, FIXED_OS_STATE) (dpkg's own file lists, see dpkg-owned.ts;
 *    a fixed list on nodes without dpkg), owned by root and readable by every user of the node.
 *    Anything else — a service's data (`/var/lib/postgresql`, owned by its user), `/opt/<app>`,
 *    `/data`, `/var/www` — is absent, whether acetate can name it or not;
 *  - emptied places (`/home`, `/root`, `/srv`, `/mnt`, `/media`, `/tmp`, `/var/tmp`, `/var/log`,
 *    `/var/spool`, `/var/mail`, `/var/backups`, `/var/local`, `/var/opt`): FHS' site and user data;
 *    shown empty, and what the container writes there is its own;
 *  - inside shown OS dirs, secrets are absent (ssh host keys, Kerberos keytabs, kubeconfigs,
 *    credential stores, what only its owner may read, in /etc at any depth: etc-walk.ts), `/etc/shadow` is the container's own copy
 *    with every password locked, `/etc/machine-id` the container's own (see host-view.ts);
 *  - `/run` is a private tmpfs (the node's sockets, runtime state); acetate's state and run dirs,
 *    every instance's (instances.ts), are always absent.
 *
 * How, and why so: overlayfs' own markers in the container's private area (its upper dir) — a
 * whiteout (absent), an opaque dir (empty) — written before the start (host-view.ts). No mount per
 * hidden path (the masks were ~30 mounts per container), and everything shown stays copy-on-write
 * like the rest of the container's `/`: `apt-get install` in a container writes its own copy of
 * /var/lib/dpkg. An extra lower layer with the markers cannot be used: overlayfs refuses a lower
 * layer below another one (`/`) on the same filesystem. What the container writes over a marker
 * is its own and kept; markers acetate placed are tracked so a node setting can take them back.
 *
 * Adjust per node: ACETATE_HOST_HIDE (more paths absent), ACETATE_HOST_SHOW (an emptied or
 * filtered place shown whole, an entry of one shown, a default secret shown). This file is pure:
 * it decides from a listing of the node; host-view.ts reads the node and writes the markers.
 */
import path from 'node:path';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../default-dirs.js';

/** The built-in template that is the node's own `/` (see ../runc/templates.ts). */
export const HOST_TEMPLATE = 'host';

/** What a container finds at a path: */
export type ViewAction =
  /** nothing (an overlayfs whiteout) */
  | { kind: 'absent' }
  /** an empty dir of its own (an opaque dir; mode and owner of the node's) */
  | { kind: 'empty' }
  /** the node's /etc/shadow or /etc/gshadow with every password locked, its own copy */
  | { kind: 'locked-copy' }
  /** its own /etc/machine-id */
  | { kind: 'machine-id' }
  /** a symlink (e.g. /var/lib/dbus/machine-id → /etc/machine-id) */
  | { kind: 'symlink'; target: string };

export type Source = 'FHS' | 'dpkg' | 'fixed list' | 'default' | 'node setting' | 'acetate';

export interface ViewEntry {
  path: string;
  action: ViewAction;
  why: string;
  source: Source;
}

export interface ShownEntry {
  path: string;
  why: string;
  source: Source;
}

/** One entry of a node dir, as lstat gives it. */
export interface NodeEntry {
  name: string;
  type: 'dir' | 'file' | 'symlink' | 'other';
  uid: number;
  mode: number;
}

/** The node's dirs as host-view.ts read them (absolute paths in the node's root → entries). */
export type NodeListing = ReadonlyMap<string, readonly NodeEntry[]>;

/** The private tmpfs mounts of a host-template container: /run, emptied at each start as on any machine. */
export const HOST_TMPFS: readonly { path: string; why: string }[] = [
  { path: '/run', why: "the node's control sockets (containerd, docker, systemd, dbus) and runtime state; acetate's run dir" },
];

/** `/` and `/var`: the FHS' dirs of the OS; everything else there is the site's. */
const OS_DIRS: Record<string, readonly string[]> = {
  '/': ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'usr', 'etc', 'var', 'opt', 'proc', 'sys', 'dev', 'run', 'tmp'],
  '/var': ['cache', 'lib', 'lock', 'run', 'tmp', 'log'],
};

/**
 * Places whose entries a package must own (or the fixed list name, without dpkg). /usr/local is
 * the local administrator's software (FHS): dpkg installs nothing there, so it is shown empty of
 * what the site put there.
 */
export const PACKAGE_PLACES = ['/var/lib', '/var/cache', '/opt', '/usr/local'] as const;

/** Where the node's data lives by the FHS: shown empty. [path, why] */
export const EMPTIED: readonly [string, string][] = [
  ['/home', "users' homes: ssh keys, kubeconfigs, credentials"],
  ['/root', "root's home: ssh keys, kubeconfigs (~/.kube), docker credentials"],
  ['/srv', "the site's served data (FHS)"],
  ['/mnt', 'mounted volumes'],
  ['/media', 'mounted removable media'],
  ['/tmp', "other programs' temporary files and sockets"],
  ['/var/tmp', "other programs' temporary files"],
  ['/var/log', "the node's and other containers' logs"],
  ['/var/spool', 'mail, cron tables, print queues'],
  ['/var/mail', "users' mail"],
  ['/var/backups', 'backups of /etc/shadow and others'],
  ['/var/local', 'variable data of /usr/local (FHS: site data)'],
  ['/var/opt', 'variable data of /opt packages'],
];

/**
 * The package managers' and the base system's own state, by name: what they write at run time
 * (dpkg's status, apt's lists, debconf's answers, ucf's hashes, systemd's enablement links) is
 * listed by no package, yet the OS needs it. With dpkg these dirs are shown whole (where a package
 * owns them); inside any other package's dir only what packages installed is shown (F7:
 * /var/lib/git is git's, the repositories in it are the site's). Without dpkg (no
 * /var/lib/dpkg/info) these names are the only entries shown. Adjust per node:
 * ACETATE_HOST_SHOW=/var/lib/<name> shows a dir whole, ACETATE_HOST_HIDE hides one.
 */
export const FIXED_OS_STATE: Record<string, readonly string[]> = {
  '/var/lib': ['dpkg', 'apt', 'rpm', 'dnf', 'yum', 'alternatives', 'pacman', 'apk', 'systemd', 'dbus', 'ucf', 'misc', 'pam', 'sgml-base', 'xml-core', 'python'],
  '/var/cache': ['apt', 'debconf', 'dnf', 'yum', 'pacman', 'apk', 'man', 'ldconfig'],
  '/opt': [],
  '/usr/local': [],
};

/**
 * Container and VM stores, cluster state: never shown, even where a package ships the dir
 * (docker.io ships /var/lib/docker). [name in /var/lib, why]
 */
const KNOWN_DATA: readonly [string, string][] = [
  ['kubelet', "kubelet's credentials, pods' volumes and secrets"],
  ['containerd', "containerd's images and containers"],
  ['docker', "docker's images, containers and volumes"],
  ['containers', "podman's and CRI-O's storage"],
  ['lxc', "LXC's containers"],
  ['lxd', "LXD's containers"],
  ['incus', "Incus' containers"],
  ['vz', 'Virtuozzo/OpenVZ containers'],
  ['machines', "systemd-nspawn's machines"],
  ['libvirt', "libvirt's virtual machine disks"],
  ['rancher', 'k3s/rke2 state, tokens and containerd'],
  ['etcd', "etcd's data (the cluster's secrets)"],
  ['cni', "CNI plugins' IP allocations"],
  ['private', "systemd DynamicUser services' state"],
];

/** Secrets and identities inside shown OS dirs. A `*` in the last component matches names. */
const SECRETS: readonly { path: string; action: ViewAction; why: string }[] = [
  { path: '/etc/shadow', action: { kind: 'locked-copy' }, why: 'password hashes: its own copy, every password locked' },
  { path: '/etc/gshadow', action: { kind: 'locked-copy' }, why: 'group password hashes: its own copy, every password locked' },
  { path: '/etc/shadow-', action: { kind: 'absent' }, why: 'backup of the password hashes' },
  { path: '/etc/gshadow-', action: { kind: 'absent' }, why: 'backup of the group password hashes' },
  { path: '/etc/security/opasswd', action: { kind: 'absent' }, why: 'old password hashes' },
  { path: '/etc/ssh/ssh_host_*key', action: { kind: 'absent' }, why: 'ssh host private keys (ssh-keygen -A makes its own)' },
  { path: '/etc/ssl/private', action: { kind: 'empty' }, why: 'TLS private keys' },
  { path: '/etc/krb5.keytab', action: { kind: 'absent' }, why: 'Kerberos keys' },
  { path: '/etc/kubernetes', action: { kind: 'empty' }, why: 'kubeconfigs (admin.conf, kubelet.conf) and cluster PKI' },
  { path: '/etc/rancher', action: { kind: 'empty' }, why: 'k3s/rke2 kubeconfigs and tokens' },
  { path: '/etc/docker', action: { kind: 'empty' }, why: "docker's daemon config and registry certificates" },
  { path: '/etc/containerd', action: { kind: 'empty' }, why: "containerd's config (registry credentials)" },
  { path: '/etc/containers/auth.json', action: { kind: 'absent' }, why: 'registry credentials' },
  { path: '/etc/NetworkManager/system-connections', action: { kind: 'empty' }, why: 'Wi-Fi and VPN secrets' },
  { path: '/etc/wireguard', action: { kind: 'empty' }, why: 'WireGuard private keys' },
  { path: '/etc/machine-id', action: { kind: 'machine-id' }, why: "the node's identity: the container has its own, made once" },
  { path: '/var/lib/dbus/machine-id', action: { kind: 'symlink', target: '/etc/machine-id' }, why: "D-Bus' copy of the machine id: points to the container's" },
  { path: '/var/lib/systemd/credential.secret', action: { kind: 'absent' }, why: "systemd's credential encryption key" },
  { path: '/var/lib/systemd/random-seed', action: { kind: 'absent' }, why: "the node's random seed" },
  { path: '/var/lib/systemd/coredump', action: { kind: 'empty' }, why: "core dumps of the node's processes" },
];

export interface HostViewOptions {
  stateDir: string;
  runDir: string;
  /** More paths absent on this node (ACETATE_HOST_HIDE). */
  hide?: readonly string[];
  /** Paths shown on this node after all (ACETATE_HOST_SHOW); never the state/run dirs. */
  show?: readonly string[];
  /** Every acetate instance's state and run dir on the node (instances.ts): absent, like this instance's. */
  instances?: readonly { stateDir: string; runDir: string }[];
  /** Entries of /etc (any depth) only their owner may read (etc-walk.ts), not below one another. */
  ownerOnly?: readonly { path: string; mode: number }[];
  /** Entries of PACKAGE_PLACES and of their dirs that installed packages own (dpkg-owned.ts); undefined: no dpkg. */
  packageOwned?: ReadonlySet<string>;
}

export interface HostView {
  /** Markers to write into the container's upper dir, parents before children. */
  entries: ViewEntry[];
  /** What is shown, with why (for `template describe host`). */
  shown: ShownEntry[];
  /** The private tmpfs mounts (only /run). */
  tmpfs: { path: string; why: string }[];
}

/** `a:b:c` (as in $PATH) → absolute normalized paths. */
export function parsePathList(value: string | undefined): string[] {
  return (value ?? '')
    .split(':')
    .map((p) => p.trim())
    .filter((p) => p.startsWith('/'))
    .map((p) => path.posix.normalize(p).replace(/(.)\/+$/, '$1'));
}

const under = (p: string, dir: string) => p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);
const parentOf = (p: string) => path.posix.dirname(p);

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
}

/** Readable and (for a dir) searchable by every user of the node, owned by root. */
function publicRootOwned(e: NodeEntry): string | undefined {
  if (e.type === 'symlink') return undefined;
  if (e.uid !== 0) return `owned by uid ${e.uid} (a service's own data)`;
  const need = e.type === 'dir' ? 0o005 : 0o004;
  if ((e.mode & need) !== need) return `mode ${(e.mode & 0o7777).toString(8).padStart(4, '0')}: not readable by the node's users`;
  return undefined;
}

/** The view of the node a host-template container gets, decided from the node's listing. */
export function hostView(listing: NodeListing, o: HostViewOptions): HostView {
  const show = new Set(o.show ?? []);
  const entries = new Map<string, ViewEntry>();
  const shown: ShownEntry[] = [];
  const hidden = (p: string) =>
    [...entries.values()].some((e) => (e.action.kind === 'absent' || e.action.kind === 'empty') && under(p, e.path) && p !== e.path);
  const add = (e: ViewEntry) => {
    if (!hidden(e.path) && !entries.has(e.path)) entries.set(e.path, e);
  };
  const showsBelow = (p: string) => [...show].some((s) => s !== p && under(s, p));
  const emptied = new Map(EMPTIED);
  const places = ['/', '/var', ...PACKAGE_PLACES];

  // Emptied places: opaque, unless the node shows them (or something in them: then filtered).
  for (const [p, why] of EMPTIED) {
    if (show.has(p)) shown.push({ path: p, why: 'shown on this node', source: 'node setting' });
    else if (!showsBelow(p)) add({ path: p, action: { kind: 'empty' }, why, source: 'default' });
  }
  const filtered = [...places, ...EMPTIED.map(([p]) => p).filter((p) => !show.has(p) && showsBelow(p))];
  for (const place of filtered.sort((a, b) => a.length - b.length)) {
    if (show.has(place)) {
      shown.push({ path: place, why: 'shown whole on this node', source: 'node setting' });
      continue;
    }
    for (const e of listing.get(place) ?? []) {
      const p = path.posix.join(place, e.name);
      if (places.includes(p) || emptied.has(p) || HOST_TMPFS.some((t) => t.path === p)) continue; // decided as a place of its own
      if (show.has(p) || showsBelow(p)) {
        shown.push({ path: p, why: 'shown on this node', source: 'node setting' });
        continue;
      }
      const verdict = decide(place, e, o, emptied.has(place));
      if (verdict.show) shown.push({ path: p, why: verdict.why, source: verdict.source });
      else add({ path: p, action: { kind: 'absent' }, why: verdict.why, source: verdict.source });
    }
  }
  // Inside shown package dirs: what only its owner may read (credential keys, debconf's passwords);
  // with dpkg, what no package installed (a package's dir holding the site's data: /var/lib/git).
  for (const s of shown.filter((x) => PACKAGE_PLACES.includes(parentOf(x.path) as (typeof PACKAGE_PLACES)[number]))) {
    if (show.has(s.path)) continue; // shown whole on this node
    const pmState = (FIXED_OS_STATE[parentOf(s.path)] ?? []).includes(path.posix.basename(s.path));
    for (const e of listing.get(s.path) ?? []) {
      const p = path.posix.join(s.path, e.name);
      if (show.has(p)) continue;
      if (e.type !== 'symlink' && (e.mode & 0o077) === 0)
        add({
          path: p,
          action: { kind: 'absent' },
          why: `mode ${(e.mode & 0o7777).toString(8).padStart(4, '0')}: readable only by its owner`,
          source: 'default',
        });
      else if (o.packageOwned && !pmState && !o.packageOwned.has(p))
        add({ path: p, action: { kind: 'absent' }, why: "in a package's dir, but no package installed it (the site's data)", source: 'dpkg' });
    }
  }
  // In /etc at any depth (etc-walk.ts): what only its owner may read.
  for (const e of o.ownerOnly ?? [])
    if (!show.has(e.path) && !SECRETS.some((x) => x.path === e.path))
      add({
        path: e.path,
        action: { kind: 'absent' },
        why: `mode ${(e.mode & 0o7777).toString(8).padStart(4, '0')}: readable only by its owner`,
        source: 'default',
      });
  for (const s of SECRETS) {
    if (show.has(s.path) && s.action.kind !== 'machine-id') continue;
    for (const p of expand(s.path, listing))
      if (!show.has(p) || s.action.kind === 'machine-id') add({ path: p, action: s.action, why: s.why, source: 'default' });
  }
  for (const p of o.hide ?? []) add({ path: p, action: { kind: 'absent' }, why: 'hidden on this node (ACETATE_HOST_HIDE)', source: 'node setting' });
  const own: [string, string][] = [
    [o.stateDir, "acetate's state dir (containers' private areas, records, logs)"],
    [o.runDir, "acetate's run dir (runc state, bundles, conmon's files)"],
    [DEFAULT_STATE_DIR, "acetate's default state dir"],
    [DEFAULT_RUN_DIR, "acetate's default run dir"],
    ...(o.instances ?? []).flatMap((i): [string, string][] => [
      [i.stateDir, "another acetate instance's state dir (its marker file; instances.ts)"],
      [i.runDir, "another acetate instance's run dir"],
    ]),
  ];
  for (const [p, why] of own) {
    const abs = path.posix.resolve(p);
    if (!under(abs, '/run')) add({ path: abs, action: { kind: 'absent' }, why, source: 'acetate' });
  }
  const list = [...entries.values()].sort((a, b) => a.path.split('/').length - b.path.split('/').length || a.path.localeCompare(b.path));
  return {
    entries: list,
    shown: shown.sort((a, b) => a.path.localeCompare(b.path)),
    tmpfs: [...HOST_TMPFS],
  };
}

/** Whether an entry of a filtered place is the OS's, and why. */
function decide(place: string, e: NodeEntry, o: HostViewOptions, inEmptied: boolean): { show: boolean; why: string; source: Source } {
  if (inEmptied) return { show: false, why: 'in an emptied place (shown only by ACETATE_HOST_SHOW)', source: 'default' };
  const os = OS_DIRS[place];
  if (os) return os.includes(e.name) ? { show: true, why: 'an OS dir', source: 'FHS' } : { show: false, why: "not an OS dir (the site's data)", source: 'FHS' };
  const known = place === '/var/lib' ? KNOWN_DATA.find(([n]) => n === e.name) : undefined;
  if (known) return { show: false, why: known[1], source: 'default' };
  const p = path.posix.join(place, e.name);
  const source: Source = o.packageOwned ? 'dpkg' : 'fixed list';
  const owned = o.packageOwned ? o.packageOwned.has(p) : (FIXED_OS_STATE[place] ?? []).includes(e.name);
  if (!owned) return { show: false, why: o.packageOwned ? 'no installed package owns it' : 'not on the fixed list of OS state (no dpkg)', source };
  const problem = publicRootOwned(e);
  if (problem) return { show: false, why: problem, source: 'default' };
  return { show: true, why: o.packageOwned ? 'installed by a package' : 'OS state (fixed list)', source };
}

/** A path, or the names a `*` in its last component matches in the listing. */
function expand(p: string, listing: NodeListing): string[] {
  const base = path.posix.basename(p);
  if (!base.includes('*')) return [p];
  const re = globToRegExp(base);
  const dir = parentOf(p);
  return (listing.get(dir) ?? []).filter((e) => re.test(e.name)).map((e) => path.posix.join(dir, e.name));
}

/**
 * The node dirs hostView needs listed: the places (an emptied one only when the node shows something
 * in it), the secrets' globs; given a first listing, also the shown dirs of PACKAGE_PLACES (their
 * owner-only entries are absent).
 */
export function dirsToList(o: Pick<HostViewOptions, 'show'>, first?: NodeListing, opts?: HostViewOptions): string[] {
  const show = o.show ?? [];
  const globs = SECRETS.filter((s) => s.path.includes('*')).map((s) => parentOf(s.path));
  const emptied = EMPTIED.map(([p]) => p).filter((p) => show.some((s) => s !== p && under(s, p)));
  const second =
    first && opts
      ? hostView(first, opts)
          .shown.filter((s) => (PACKAGE_PLACES as readonly string[]).includes(parentOf(s.path)))
          .filter((s) => first.get(parentOf(s.path))?.find((e) => e.name === path.posix.basename(s.path))?.type === 'dir')
          .map((s) => s.path)
      : [];
  return [...new Set(['/', '/var', ...PACKAGE_PLACES, ...emptied, ...globs, ...second])];
}

/** `name:hash:…` lines of /etc/shadow or /etc/gshadow with the second field `*` (locked). */
export function lockedCopy(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      const f = line.split(':');
      if (f.length < 2 || line.startsWith('#')) return line;
      f[1] = f[1] === '!' || f[1] === '!*' ? f[1] : '*';
      return f.join(':');
    })
    .join('\n');
}
