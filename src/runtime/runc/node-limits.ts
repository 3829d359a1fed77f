/**
 * Node-wide kernel limits that stop the next container before anything of acetate's does (issue
 * 25): each running container holds a few tasks, a session keyring (runc gives every container
 * one), open files, a memory cgroup and a set of namespaces, and the node has a ceiling for each.
 * When a ceiling is reached, runc fails with a bare errno ("disk quota exceeded" for keys,
 * "resource temporarily unavailable" for tasks); here the limit is named with the sysctl that
 * raises it, before the create (apply warns about a plan that would cross one) and at each start
 * (refused when not one more container fits).
 *
 * findNodeLimits is pure (facts in, findings out); readNodeFacts reads /proc. What a container
 * holds (PER_CONTAINER) is what the density benchmark measured for the smallest container (conmon,
 * init, one process): a workload with more processes holds more tasks, so the task figures are
 * the least a container needs, never a promise that N more fit.
 */
import { readFileSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';

/**
 * The kernel's own small files (/proc, /sys), read at every start (admitOneMore): read at once
 * rather than through libuv's thread pool, whose round trip per file (a thread woken, then the
 * main thread) took 40-90 ms for these ten files on a loaded 2-core node (issue 25). A failed read
 * is a rejected promise, as with fs/promises.
 */
const readFile = async (file: string, encoding: 'utf8'): Promise<string> => readFileSync(file, encoding);

/** What one running container holds of each limit (measured: bench/density.ts, per-container figures). */
export const PER_CONTAINER = {
  /** conmon, the init (catatonit) and the process itself. */
  tasks: 3,
  /** runc's session keyring (`_ses.<id>`) while the container lives. */
  keys: 1,
  /** Its description and payload, as the key quota counts them (bytes). */
  keyBytes: 32,
  /** conmon's fds (log, pipes, ctl/winsz fifos, eventfds, the oom_control) and the init's. */
  files: 32,
  /** Its conmon, in acetate's own pids cgroup on cgroup v1 (ownPids). */
  conmons: 1,
  /** Its own cgroup in each hierarchy; the memory controller's ids are the scarce ones. */
  memoryCgroups: 1,
  /** mount, pid, ipc, uts, cgroup and network (network: none is an empty namespace of its own). */
  namespaces: 1,
} as const;

/** cgroup v1 memory controller ids are 16 bits (MEM_CGROUP_ID_MAX); offline ones still hold theirs. */
export const MEMORY_CGROUP_ID_MAX = 65_535;

/**
 * The namespaces every container gets. A user namespace only with spec.securityContext's user
 * namespace; then user.max_user_namespaces counts too (not checked here yet).
 */
export type NamespaceKind = 'mnt' | 'pid' | 'ipc' | 'uts' | 'cgroup' | 'net';
const NAMESPACE_KINDS: readonly NamespaceKind[] = ['mnt', 'pid', 'ipc', 'uts', 'cgroup', 'net'];

export interface NodeFacts {
  /** /proc/loadavg's 4th field: tasks (threads) on the node now. */
  tasks: number;
  pidMax: number;
  threadsMax: number;
  /** Root's line of /proc/key-users (containers' keyrings belong to root without a user namespace). */
  rootKeys: { keys: number; bytes: number };
  rootMaxKeys: number;
  rootMaxBytes: number;
  /** /proc/sys/fs/file-nr: allocated file handles, and fs.file-max. */
  files: number;
  fileMax: number;
  /** /proc/cgroups' num_cgroups of the memory controller (v1), if it is there. */
  memoryCgroups?: number;
  /**
   * cgroup v1: the pids cgroup acetate runs in and its pids.max (systemd's TasksMax for the unit),
   * when bounded. conmons leave acetate's cgroup only in the hierarchies systemd tracks
   * (conmon-cgroup.ts), so on v1 each container's conmon still counts here.
   */
  ownPids?: { cgroup: string; max: number; current: number };
  /** Namespaces in use by kind (distinct ids over /proc/<pid>/ns), and user.max_<kind>_namespaces. Only when asked (a scan of /proc). */
  namespaces?: Partial<Record<NamespaceKind, { used: number; max: number }>>;
}

export interface NodeLimitFinding {
  /** The sysctl (or kernel constant) that is the ceiling. */
  limit: string;
  max: number;
  used: number;
  /** Of that limit, what one container holds. */
  perContainer: number;
  /** How many more containers fit under it. */
  room: number;
  /** The containers asked for. */
  wanted: number;
  /** Not one more fits: refuse. Else some of the wanted fit: warn. */
  refuse: boolean;
  /** What to do, one line: the sysctl with a value that fits the wanted ones with room to spare. */
  fix: string;
  message: string;
}

/** A start refused because a node limit has no room for one more container. */
export class NodeLimitError extends Error {
  constructor(
    message: string,
    readonly findings: readonly NodeLimitFinding[],
  ) {
    super(message);
    this.name = 'NodeLimitError';
  }
}

/** Room kept free under each limit for everything else on the node (a shell, a log rotation). */
const SPARE = 0.02;

function finding(limit: string, max: number, used: number, per: number, wanted: number, fix: (value: number) => string): NodeLimitFinding | undefined {
  const spare = Math.ceil(max * SPARE);
  const room = Math.max(0, Math.floor((max - spare - used) / per));
  if (room >= wanted) return undefined;
  // Enough for what is asked, twice over, rounded up to a power of two as these values usually are.
  const value = 2 ** Math.ceil(Math.log2(Math.max(max, (used + wanted * per) * 2)));
  const refuse = room === 0;
  const message = `${limit} is ${max} and ${used} are in use: ${refuse ? 'not one more container fits' : `only ${room} of the ${wanted} containers to start fit`} (each needs ${per}); ${fix(value)}`;
  return { limit, max, used, perContainer: per, room, wanted, refuse, fix: fix(value), message };
}

/** The limits `wanted` more containers would cross (pure). */
export function findNodeLimits(f: NodeFacts, wanted: number, per: { [K in keyof typeof PER_CONTAINER]: number } = PER_CONTAINER): NodeLimitFinding[] {
  if (wanted <= 0) return [];
  const sysctl = (name: string) => (v: number) => `raise it with \`sysctl -w ${name}=${v}\` (and in /etc/sysctl.d/ to keep it)`;
  const out = [
    finding('kernel.pid_max', f.pidMax, f.tasks, per.tasks, wanted, sysctl('kernel.pid_max')),
    finding('kernel.threads-max', f.threadsMax, f.tasks, per.tasks, wanted, sysctl('kernel.threads-max')),
    finding('kernel.keys.root_maxkeys', f.rootMaxKeys, f.rootKeys.keys, per.keys, wanted, sysctl('kernel.keys.root_maxkeys')),
    finding('kernel.keys.root_maxbytes', f.rootMaxBytes, f.rootKeys.bytes, per.keyBytes, wanted, sysctl('kernel.keys.root_maxbytes')),
    finding('fs.file-max', f.fileMax, f.files, per.files, wanted, sysctl('fs.file-max')),
  ];
  if (f.memoryCgroups !== undefined) {
    out.push(
      finding(
        'memory cgroups (cgroup v1 ids)',
        MEMORY_CGROUP_ID_MAX,
        f.memoryCgroups,
        per.memoryCgroups,
        wanted,
        () => 'a kernel limit: remove unused cgroups (or move the node to cgroup v2)',
      ),
    );
  }
  if (f.ownPids) {
    const fix = () => `raise TasksMax= of acetate's systemd unit (e.g. TasksMax=infinity; pids.max of ${f.ownPids!.cgroup})`;
    out.push(finding(`pids.max of acetate's cgroup`, f.ownPids.max, f.ownPids.current, per.conmons, wanted, fix));
  }
  for (const [kind, n] of Object.entries(f.namespaces ?? {}) as [NamespaceKind, { used: number; max: number }][]) {
    out.push(finding(`user.max_${kind}_namespaces`, n.max, n.used, per.namespaces, wanted, sysctl(`user.max_${kind}_namespaces`)));
  }
  return out.filter((x): x is NodeLimitFinding => x !== undefined);
}

/** Root's keys and key bytes from /proc/key-users ("    0:   410 409/409 404/1000000 7656/25000000"). */
export function parseRootKeys(text: string): { keys: number; bytes: number } {
  const m = /^\s*0:\s+\d+\s+\d+\/\d+\s+(\d+)\/\d+\s+(\d+)\/\d+/m.exec(text);
  return m ? { keys: Number(m[1]), bytes: Number(m[2]) } : { keys: 0, bytes: 0 };
}

/** num_cgroups of the memory controller in /proc/cgroups, when it is a v1 hierarchy (hierarchy id ≠ 0). */
export function parseMemoryCgroups(text: string): number | undefined {
  const m = /^memory\s+(\d+)\s+(\d+)\s+1$/m.exec(text);
  return m && m[1] !== '0' ? Number(m[2]) : undefined;
}

/** cgroup v1's pids cgroup of this process, when it has a bound (pids.max not "max"). */
async function ownPidsCgroup(proc: string): Promise<NodeFacts['ownPids']> {
  const rel = /^\d+:pids:(.*)$/m.exec(await readFile(`${proc}/self/cgroup`, 'utf8').catch(() => ''))?.[1];
  if (rel === undefined) return undefined;
  const dir = `/sys/fs/cgroup/pids${rel === '/' ? '' : rel}`;
  const max = (await readFile(`${dir}/pids.max`, 'utf8').catch(() => 'max')).trim();
  if (max === 'max') return undefined;
  return { cgroup: dir, max: Number(max), current: await num(`${dir}/pids.current`).catch(() => 0) };
}

async function num(file: string): Promise<number> {
  const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
  if (!Number.isFinite(n)) throw new Error(`${file}: not a number`);
  return n;
}

/** Distinct namespace ids per kind over every process (a scan of /proc: for apply's warning, not each start). */
async function namespacesInUse(proc: string): Promise<Record<NamespaceKind, number>> {
  const seen = Object.fromEntries(NAMESPACE_KINDS.map((k) => [k, new Set<string>()])) as Record<NamespaceKind, Set<string>>;
  for (const e of await readdir(proc)) {
    if (!/^\d+$/.test(e)) continue;
    for (const k of NAMESPACE_KINDS) {
      const id = await readlink(`${proc}/${e}/ns/${k}`).catch(() => undefined);
      if (id) seen[k].add(id);
    }
  }
  return Object.fromEntries(NAMESPACE_KINDS.map((k) => [k, seen[k].size])) as Record<NamespaceKind, number>;
}

/**
 * The facts, read from /proc (`proc` for tests). `namespaces`: also scan every process's
 * namespaces (~0.3 s with 1,500 processes); a number (the containers wanted): only when they could
 * come near a user.max_*_namespaces, i.e. when the tasks on the node plus the namespaces kept by
 * mounts (nsfs: persistent network namespaces) plus the wanted would pass the lowest of them.
 * Every namespace in use is held by a task, a mount or an open fd, so the bound only misses
 * namespaces held by fds alone.
 */
export async function readNodeFacts(opts: { proc?: string; namespaces?: boolean | number } = {}): Promise<NodeFacts> {
  const proc = opts.proc ?? '/proc';
  const loadavg = (await readFile(`${proc}/loadavg`, 'utf8')).split(/\s+/)[3] ?? '0/0';
  const [files = 0, , fileMax = 0] = (await readFile(`${proc}/sys/fs/file-nr`, 'utf8')).trim().split(/\s+/).map(Number);
  const facts: NodeFacts = {
    tasks: Number(loadavg.split('/')[1]),
    pidMax: await num(`${proc}/sys/kernel/pid_max`),
    threadsMax: await num(`${proc}/sys/kernel/threads-max`),
    rootKeys: parseRootKeys(await readFile(`${proc}/key-users`, 'utf8').catch(() => '')),
    rootMaxKeys: await num(`${proc}/sys/kernel/keys/root_maxkeys`),
    rootMaxBytes: await num(`${proc}/sys/kernel/keys/root_maxbytes`),
    files,
    fileMax,
  };
  const own = await ownPidsCgroup(proc);
  if (own) facts.ownPids = own;
  const mem = parseMemoryCgroups(await readFile(`${proc}/cgroups`, 'utf8').catch(() => ''));
  if (mem !== undefined) facts.memoryCgroups = mem;
  if (typeof opts.namespaces === 'number') {
    const maxes = await Promise.all(NAMESPACE_KINDS.map((k) => num(`${proc}/sys/user/max_${k}_namespaces`).catch(() => Infinity)));
    const nsfs = (await readFile(`${proc}/self/mountinfo`, 'utf8').catch(() => '')).split('\n').filter((l) => / - nsfs /.test(l)).length;
    if (facts.tasks + nsfs + opts.namespaces * PER_CONTAINER.namespaces < Math.min(...maxes) * (1 - SPARE)) return facts;
  }
  if (opts.namespaces !== undefined && opts.namespaces !== false) {
    const used = await namespacesInUse(proc);
    facts.namespaces = {};
    for (const k of NAMESPACE_KINDS) {
      const max = await num(`${proc}/sys/user/max_${k}_namespaces`).catch(() => undefined);
      if (max !== undefined) facts.namespaces[k] = { used: used[k], max };
    }
  }
  return facts;
}

/**
 * At each start: refuse, naming the limit, when not one more container fits. Reads a handful of
 * small /proc files (no scan), so it costs well under a millisecond next to runc's tens.
 */
export async function admitOneMore(what: string, read: () => Promise<NodeFacts> = () => readNodeFacts()): Promise<void> {
  const refused = findNodeLimits(await read(), 1).filter((f) => f.refuse);
  if (refused.length) throw new NodeLimitError(`${what} refused: ${refused.map((f) => f.message).join('; ')}`, refused);
}
