/**
 * The container runtime behind acetate's plan/apply and loop. Small on purpose, so that another
 * backend (a Docker or Podman API) can be added without touching the loop: the loop only ever
 * speaks of containers by key (`namespace/name`) and of normalized specs.
 *
 * Every method is idempotent: calling it again after it already happened (or after it was
 * interrupted half way, e.g. acetate was SIGKILLed) converges and leaks nothing.
 */
import type { NormalizedSpec, Resources, SourceRef, ResourceName } from '../api/types.js';
import type { NetworkStatus, NodeNetworkConfig } from './network/driver.js';
import type { ImageStore } from '../images/store.js';

/** What acetate last applied to a container; stored by the runtime next to the container. */
export interface AppliedRecord {
  namespace: string;
  name: string;
  spec: NormalizedSpec;
  /** hashOf(spec), also written as the OCI annotation `acetate.dev/spec-hash`. */
  specHash: string;
  source: SourceRef;
  createdAt: string;
}

/**
 * How the node stores a resource value it is given: memory limits in whole pages rounded down,
 * disk images in whole blocks rounded up. The plan compares what it reads back with what is
 * desired as the node would store it, so a rounded value is not taken for drift.
 */
export interface Granularity {
  step: number;
  rounding: 'down' | 'up';
}
export type ResourceGranularity = Partial<Record<ResourceName, Granularity>>;

/** Whether the container's process is running. `absent`: never started, or stopped and cleaned up. */
export type ProcessState = 'running' | 'exited' | 'absent';

export interface ProcessInfo {
  state: ProcessState;
  pid?: number;
  startedAt?: string;
  finishedAt?: string;
  /** Exit code of the last run (recorded by the supervisor, e.g. conmon). */
  exitCode?: number;
  /** Why the last run ended, when more is known than its code: `OOMKilled`. */
  reason?: string;
  /**
   * Set when the runtime cannot vouch for the process: its supervisor is gone (it runs on,
   * unlogged, and its exit code will not be known), or a run ended unseen. Says what happened.
   */
  unsupervised?: string;
  /** Running, but its processes frozen (`runc pause`: by a repair, a write of its markers, or by hand): they take no signal and make no progress. */
  paused?: true;
}

/** A container as it actually is on the node. Only containers this acetate instance created. */
export interface ActualContainer {
  key: string;
  namespace: string;
  name: string;
  /** Runtime-level id (for runc: the container id under acetate's own --root). */
  id: string;
  applied: AppliedRecord;
  /** Whether applied.specHash is the hash of applied.spec (applied-record.ts specHashMatches); absent: not worked out (plan does). */
  appliedHashMatches?: boolean;
  process: ProcessInfo;
  /** Limits read back from the running container's cgroup (empty when not running). */
  limits: Resources;
  /** How many times the process has been started again after its first start. */
  restartCount: number;
  /** network: bridge: its address, namespace, published ports, and what is broken (see network/driver.ts). */
  network?: NetworkStatus;
  /** The private area's own filesystem (resources.disk), when it is attached. */
  disk?: DiskUsage;
  /** The node ids its root is (its own range, recorded at its create: walls/id-ranges.ts); absent: the node's own ids. */
  idRange?: IdRangeFact;
}

/** A range of node ids: container id 0 is hostID (walls/id-pool.ts IdRange). */
export interface IdRangeFact {
  hostID: number;
  size: number;
}

/**
 * What plan needs to know of the node's user namespace options: what an absent hostUsers means,
 * and the pool containers' ranges come from. A change of either is a planned replace of the
 * containers it concerns (plan/user-namespace.ts), never a switch at their next start.
 */
export interface UserNamespaceFacts {
  /** --host-users / ACETATE_HOST_USERS: true, the node's ids; false (the default), a user namespace. */
  hostUsersDefault: boolean;
  /** --userns-pool / ACETATE_USERNS_POOL. */
  pool: IdRangeFact;
  /** Ranges other acetate instances of the node hold (the node's id records): not free for this one. */
  heldElsewhere?: IdRangeFact[];
  /**
   * The plan sees only some containers (the loop plans one key at a time): it cannot tell which
   * range is free or shared, so it names no range (the runtime takes the lowest free one).
   */
  othersUnseen?: boolean;
}

/** Size and use of a private area with a disk limit (see disk/driver.ts). */
export interface DiskUsage {
  /** The size in force (the image's size): what resources.disk is compared with. */
  sizeBytes: number;
  /** statfs of the filesystem: total data blocks and blocks in use (metadata included), in bytes. */
  totalBytes: number;
  usedBytes: number;
  /**
   * What the files take of usedBytes: without XFS's own metadata (reserved pool, per-AG
   * reservations), which grows with the filesystem (an empty 10Gi disk uses 103 MiB). Undefined
   * for a disk made before acetate recorded its metadata: usedBytes counts then.
   */
  filesBytes?: number;
  /** What acetate keeps of usedBytes for itself (disk/room-reserve.ts: 1 MiB, less once used). */
  reservedBytes?: number;
}

export interface DeferredResize {
  resource: ResourceName;
  /** e.g. "memory usage 300Mi is above the new limit 256Mi; the kernel refused it". */
  reason: string;
  /** The change cannot be made at all with the data in use (a disk shrink that does not fit), not only not now. */
  infeasible?: boolean;
}

export interface ResizeResult {
  /** Limits read back from the cgroup after the update. */
  limits: Resources;
  /** Resources the kernel refused to change now; the old limit is still in force. */
  deferred: DeferredResize[];
}

export interface CreateRequest {
  namespace: string;
  name: string;
  spec: NormalizedSpec;
  source: SourceRef;
  /** hostUsers: false: the range plan announced, taken when it is still free (else the lowest free one). */
  idRange?: IdRangeFact;
}

export interface StopOptions {
  /** Seconds between SIGTERM and SIGKILL. */
  graceSeconds: number;
  /**
   * Leave the container as a crashed one: the process is ended but the container reads as
   * `exited` with its exit code, so restartPolicy and the crash-loop back-off decide its restart
   * (a failed liveness probe). Default false: stopped and cleaned up.
   */
  leaveExited?: boolean;
}

export interface RemoveOptions {
  /** Keep the container's private area (its writable upper layer) for a replacement. */
  keepPrivateArea: boolean;
  /**
   * Keep the container's log as the previous log (`acetate logs --previous`): a replace does,
   * as Kubernetes keeps the previous container's log; a destroy removes both.
   */
  keepLog?: boolean;
}

export interface LogOptions {
  /** Only the last N lines. */
  tail?: number;
  /** Only lines written at or after this time (epoch ms). */
  sinceMs?: number;
  /** Prefix each line with the time it was written (RFC 3339, as `kubectl logs --timestamps`). */
  timestamps?: boolean;
  /** The previous container's log (before the last restart or replace), as `kubectl logs --previous`. */
  previous?: boolean;
}

export interface FollowOptions extends LogOptions {
  /** Ends the follow early (e.g. the user pressed ^C). */
  signal?: AbortSignal;
  /** How often the log is looked at (ms; default 100). */
  pollIntervalMs?: number;
  /** Told when rotated log files were replaced before they could be read (their lines are lost). */
  onMissed?: (files: number) => void;
}

/** A process run inside a running container (its namespaces and cgroup), as `kubectl exec`. */
export interface ExecRequest {
  command: string[];
  /**
   * inherit: the caller's stdout/stderr (and stdin with `interactive`), for a user at a terminal;
   * capture: output collected (the first 10 KiB, as Kubernetes keeps of a probe), stdin closed.
   * A capture ends when the process exits, though a child it left behind holds its output open,
   * and reads a bounded amount of output: beyond it the pipes are closed (the command gets SIGPIPE).
   */
  stdio: 'inherit' | 'capture';
  interactive?: boolean;
  /** A terminal (inherit only; the caller's stdin must be one). */
  tty?: boolean;
  /** The process is killed after this long and the result says timedOut. */
  timeoutMs?: number;
  /** Kills the process (as at the timeout) when aborted; the result then says aborted. */
  signal?: AbortSignal;
}

export interface ExecResult {
  /** The process's exit code (128 + signal number when a signal ended it). */
  exitCode: number;
  /** stdout and stderr, interleaved (capture only). */
  output?: string;
  /** Capture only: the output went on beyond this many bytes, which were all that was read. */
  outputCut?: number;
  timedOut?: boolean;
  /** The command could not be started (inherit only): why, in one line; exitCode is 127 (not found) or 126 (not executable), as Podman. */
  startError?: string;
  aborted?: boolean;
}

export interface Runtime {
  readonly name: string;
  /** Images as templates (src/images), when this runtime can run them. */
  readonly images?: ImageStore;
  /** How this runtime's node rounds resource values (none: values are kept as given). */
  readonly granularity?: ResourceGranularity;
  /** Checks the runtime can work here (binaries, privileges); throws a RuntimeUnavailableError otherwise. */
  preflight(): Promise<void>;
  /**
   * The node limits (kernel ceilings: tasks, keyrings, files, cgroups, namespaces) that `wanted`
   * more running containers would cross, each in one line naming the sysctl that raises it;
   * refuse: not one more fits (each start is then refused with the same words).
   */
  nodeLimits?(wanted: number): Promise<{ refuse: boolean; message: string }[]>;
  /** Every container this acetate instance manages (with keys: only those of them). */
  list(opts?: ListOptions): Promise<ActualContainer[]>;
  get(key: string): Promise<ActualContainer | undefined>;
  /** Throws if create(req) would refuse it (missing template, a mount it refuses...); changes nothing. */
  check(req: CreateRequest): Promise<void>;
  /** Prepares the container (private area, record) without starting it. */
  create(req: CreateRequest): Promise<void>;
  /**
   * Runs fn as a user of what req is made from (its image): nothing removes it meanwhile (no
   * `image rm|prune`), though no container names it yet. A replace checks, stops and removes the
   * old container, and creates the new one inside, so that what check() found is still there for
   * create() once the old container is gone. check() and create() inside fn join that use.
   */
  withImageUse?<T>(req: CreateRequest, fn: () => Promise<T>): Promise<T>;
  /** Starts the process with the applied spec; returns the pid. A running container is left alone. */
  start(key: string): Promise<{ pid: number }>;
  /** SIGTERM, grace period, SIGKILL; cleans up the runtime state of the process. */
  stop(key: string, opts: StopOptions): Promise<{ exitCode?: number }>;
  /** Changes limits of a running container in place (same pid) and records them as applied. */
  updateResources(key: string, resources: Resources): Promise<ResizeResult>;
  /**
   * network: bridge, running: publishes the record's ports in place (same namespace, same pid), or
   * with `repair` rebuilds a network found broken (CNI DEL + ADD with the same address).
   */
  updateNetwork(key: string, opts: { repair: boolean }): Promise<NetworkStatus | undefined>;
  /** Rewrites the applied record (e.g. after a change that needs no runtime action). */
  recordApplied(key: string, record: AppliedRecord): Promise<void>;
  /** Stops (if needed) and removes the container: runtime state, mounts, cgroups, directories. */
  remove(key: string, opts: RemoveOptions): Promise<void>;
  /** The container's output as text (UTF-8 decoded: for people and tests; see logBytes). */
  logs(key: string, opts?: LogOptions): Promise<string>;
  /** The container's output, byte for byte as it wrote it. */
  logBytes(key: string, opts?: LogOptions): Promise<Buffer>;
  /** The node network of bridge containers (bridge, subnet, gateway), for `acetate describe`. */
  readonly nodeNetwork?: NodeNetworkConfig;
  /** The node network asked for and the one containers were set up on: a fact of plan (see NodeNetworkFacts). */
  networkFacts?(): Promise<NodeNetworkFacts | undefined>;
  /** The node's user namespace options, a fact of plan (see UserNamespaceFacts). */
  userNamespaceFacts?(): UserNamespaceFacts;
  /** Writes the log as it grows (after what logs() would print) until the container is removed. */
  followLogs(key: string, write: (bytes: Buffer) => void | Promise<void>, opts?: FollowOptions): Promise<void>;
  /** Runs a process in the running container; throws NotRunningError when it does not run. */
  exec(key: string, req: ExecRequest): Promise<ExecResult>;
  /**
   * Clears what killed acetates left on the node outside a container's own operations (loop
   * devices and mounts of private-area images whose container is gone). Called by the process
   * that changes the node (apply, run) before it works, never by read-only commands. Returns
   * warnings to print: what it found and left (id ranges it could not claim for the node).
   */
  sweepLeftovers?(): Promise<string[] | void>;
  /**
   * The security level and allowed host paths of each namespace, asked at every start to check
   * where each hostPath leads then (walls/hostpath-open.ts): Kubernetes mode gives the namespaces'
   * labels here, file and Git mode the node setting.
   */
  setHostPathRules?(rules: (namespace: string) => { level: 'privileged' | 'baseline' | 'restricted'; allowedHostPaths: readonly string[]; why: string }): void;
  /**
   * Event-driven process watch for the long-running loop: onChange(key) when a tracked
   * container's process may have changed (it exited, its supervisor or process vanished), so that
   * the loop does not have to relist every container to notice. Best effort: the loop's slow
   * resync still catches what an event missed.
   */
  watchProcesses?(onChange: (key: string) => void): ProcessWatch;
  /**
   * For the long-running loop: keeps host-template containers' view of the node current while
   * they run (what the node makes in its data places after their start is hidden within
   * moments; see walls/host-view-watch.ts). Errors are reported, never thrown. `onContainer`: a
   * running container whose markers could not all be placed (why), and its recovery (undefined).
   */
  watchHostView?(onError: (err: unknown) => void, onContainer?: (key: string, problem: string | undefined) => void): { close(): void };
  /** The keys of every container this instance manages, cheaply (no per-container reads). */
  keys?(): Promise<string[]>;
  /** The disk use of a container read earlier (its private area's filesystem, now): `get` beside the loop's view. */
  diskUsage?(c: ActualContainer): Promise<DiskUsage | undefined>;
}

export interface ListOptions {
  /** Only these containers (the ones of them that exist): a look at a few costs a few reads, not N. */
  keys?: Iterable<string>;
}

/** What watchProcesses returns. */
export interface ProcessWatch {
  /** (Re)starts watching key as it is now; the loop calls it after each reconcile of key. */
  track(key: string): void;
  /** Cheap liveness look over the tracked running containers: the keys whose process or supervisor is gone. */
  sweep(): string[];
  /** Stops watching everything. */
  close(): void;
}

/**
 * The node network as plan sees it: a change of `--network-subnet`/`--network-bridge` is planned
 * (refused while containers hold addresses on the old one), never a silent overwrite.
 */
export interface NodeNetworkFacts {
  /** What the flags and environment ask for now (else the record, else the defaults). */
  wanted: { bridge: string; subnet: string };
  /** What the node's bridge containers were set up on (<stateDir>/network/node.json), when any was. */
  recorded?: { bridge: string; subnet: string };
  /** Keys of the containers that hold network state (an address) on the recorded network; read only when it differs. */
  holders: string[];
}

/** The container exists but its process does not run (exec needs a running container). */
export class NotRunningError extends Error {
  constructor(key: string) {
    super(`container ${key} is not running`);
    this.name = 'NotRunningError';
  }
}

/**
 * runc 1.1.5 cannot exec into this container: `runc exec` joins the container's user namespace
 * first, and then may not join a network namespace that namespace does not own. Only a container
 * whose bridge namespace an older acetate made (owned by the node's user namespace) is such; its
 * next start gives it one its own user namespace owns (network/netns.ts). The message names the way out.
 */
export class ExecUnsupportedError extends Error {
  constructor(key: string) {
    super(
      `cannot exec in ${key}: its network namespace is not known to be its user namespace's (made by an older acetate, owned by the node's; or the file holding its owner was removed), and runc 1.1.5 joins the user namespace first (setns: EPERM). Its processes run; \`acetate run\` binds a removed file again within seconds, and its next start (state: Stopped, then Running) gives it a network namespace of its own`,
    );
    this.name = 'ExecUnsupportedError';
  }
}

/** acetate cannot run here (not root, runc missing...): the message says how to fix it in one line. */
export class RuntimeUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RuntimeUnavailableError';
  }
}

/** The container does not exist. */
export class NotFoundError extends Error {
  constructor(key: string) {
    super(`container ${key} not found`);
    this.name = 'NotFoundError';
  }
}
