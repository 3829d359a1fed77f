/**
 * Types of the Container API (acetate.dev/v1alpha1). They follow the CRD's openAPIV3Schema in
 * crds/containers.acetate.dev.yaml, which is the single source of validation.
 */

export const API_GROUP = 'acetate.dev';
export const API_VERSION = 'acetate.dev/v1alpha1';
export const KIND = 'Container';

export type DesiredProcessState = 'Running' | 'Stopped';
export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';
export type ResizeRestartPolicy = 'NotRequired' | 'RestartContainer';
export type ResourceName = 'cpu' | 'memory' | 'pids' | 'disk';
export type NetworkMode = 'none' | 'host' | 'bridge';
export type PortProtocol = 'TCP' | 'UDP';

/** A port of the container, published on the node when hostPort is set (Kubernetes' ContainerPort). */
export interface PublishedPort {
  name?: string;
  containerPort: number;
  hostPort?: number;
  hostIP?: string;
  protocol: PortProtocol;
}
export type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';
/** Resources every normalized resizePolicy names (disk only when set, so that specs without it hash as before). */
export const RESOURCE_NAMES: readonly ResourceName[] = ['cpu', 'memory', 'pids'];

/** The spec as a user writes it (YAML / Kubernetes object). */
export interface ContainerSpec {
  /** Exactly one of template and image. */
  template?: string;
  /** An OCI image reference (`debian:12`, `host:5000/team/app@sha256:…`); see src/images. */
  image?: string;
  imagePullPolicy?: ImagePullPolicy;
  /** Required with a template; with an image it overrides the image's Entrypoint. */
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  workingDir?: string;
  hostname?: string;
  state?: DesiredProcessState;
  resources?: { cpu?: string | number; memory?: string | number; pids?: number; disk?: string | number };
  resizePolicy?: { resourceName: ResourceName; restartPolicy: ResizeRestartPolicy }[];
  restartPolicy?: RestartPolicy;
  terminationGracePeriodSeconds?: number;
  mounts?: { hostPath: string; containerPath: string; readOnly?: boolean }[];
  network?: NetworkMode;
  ports?: { name?: string; containerPort: number; hostPort?: number; hostIP?: string; protocol?: PortProtocol }[];
  securityContext?: {
    privileged?: boolean;
    noNewPrivileges?: boolean;
    /** Added to or dropped from the default set (DEFAULT_CAPABILITIES in capabilities.ts: Docker's without NET_RAW). */
    capabilities?: { add?: string[]; drop?: string[] };
    /** Kubernetes' shape: RuntimeDefault (Docker's/Podman's profile, the default), Unconfined, Localhost + path. */
    seccompProfile?: { type: 'RuntimeDefault' | 'Unconfined' | 'Localhost'; localhostProfile?: string };
    /** false: a user namespace, the container's root an unprivileged node uid (Kubernetes' hostUsers). */
    hostUsers?: boolean;
    /** The uid the process runs as (Kubernetes' name); default the image's User, else 0. */
    runAsUser?: number;
    /** The gid the process runs as; default the image's group, else 0 (with runAsUser alone: 0, as in Kubernetes). */
    runAsGroup?: number;
    /** true: the container is not started when its process would run as uid 0 (Kubernetes' check). */
    runAsNonRoot?: boolean;
  };
  nodeName?: string;
  /** Run a minimal init (catatonit) as PID 1 that forwards signals and reaps zombies. Default true. */
  init?: boolean;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}

/** Kubernetes' Probe (core/v1), the handlers acetate supports: exec, httpGet, tcpSocket. */
export interface Probe {
  exec?: { command: string[] };
  httpGet?: { path?: string; port: number; host?: string; scheme?: 'HTTP' | 'HTTPS'; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number; host?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export type Phase = 'Pending' | 'Running' | 'Stopped' | 'Failed' | 'Unknown';

export interface ContainerStatus {
  observedGeneration?: number;
  phase?: Phase;
  node?: string;
  pid?: number;
  restartCount?: number;
  lastExitCode?: number;
  startedAt?: string;
  /** The container's address on the node's bridge (network: bridge). */
  ip?: string;
  /** The image the container runs, and its resolved digest (as Kubernetes' containerStatuses[].imageID). */
  image?: string;
  imageID?: string;
  resources?: { cpu?: string; memory?: string; pids?: number; disk?: string };
  /** The private area's filesystem (with resources.disk): bytes used and total, from statfs. */
  disk?: { usedBytes: number; totalBytes: number };
  conditions?: Condition[];
}

/** A Container object as written in a file or stored by the Kubernetes API server. */
export interface ContainerManifest {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: ContainerSpec;
  status?: ContainerStatus;
}

/** Resources in canonical units. An absent field means "no limit". */
export interface Resources {
  cpuMillis?: number;
  memoryBytes?: number;
  pids?: number;
  /** Size of the private area's own filesystem (resources.disk); absent: the private area is unbounded. */
  diskBytes?: number;
}

/** The spec with every default filled in and every quantity parsed: what plan and runtime work on. */
export interface NormalizedSpec {
  /** '' when the container is made from an image. */
  template: string;
  /**
   * The image (canonical reference), and the digest it was resolved to before planning (absent in
   * a spec straight from a manifest; src/images/pin.ts fills it in). Absent for templates, so the
   * specs and hashes of template containers are what they were before images existed.
   */
  image?: { ref: string; digest?: string };
  imagePullPolicy?: ImagePullPolicy;
  command: string[];
  args: string[];
  env: { name: string; value: string }[];
  workingDir: string;
  hostname: string;
  state: DesiredProcessState;
  resources: Resources;
  resizePolicy: Record<Exclude<ResourceName, 'disk'>, ResizeRestartPolicy> & { disk?: ResizeRestartPolicy };
  restartPolicy: RestartPolicy;
  terminationGracePeriodSeconds: number;
  mounts: { hostPath: string; containerPath: string; readOnly: boolean }[];
  network: NetworkMode;
  /** Absent when there are none (so specs written before ports existed keep their hash). */
  ports?: PublishedPort[];
  security: {
    privileged: boolean;
    noNewPrivileges: boolean;
    capAdd: string[];
    capDrop: string[];
    /** Absent: RuntimeDefault (kept absent so that specs applied before seccomp keep their hash). */
    seccompProfile?: { type: 'Unconfined' | 'Localhost'; localhostProfile?: string };
    /** Present only when set (so that specs written before these fields keep their hash). */
    runAsUser?: number;
    runAsGroup?: number;
    runAsNonRoot?: true;
    /**
     * As written: false, a user namespace (the container's own range of node ids); true, the
     * node's ids; absent, the node's default (--host-users, false unless set). plan resolves it
     * (plan/user-namespace.ts): what the runtime gets and records is false, or absent for the node's ids.
     */
    hostUsers?: boolean;
  };
  nodeName?: string;
  /**
   * `false` when the user turned the init off; absent means on (the default), so that records
   * written before the field existed compare equal and are not replaced (they get the init at
   * their next start).
   */
  init?: false;
  /** Probes with Kubernetes' defaults filled in (see src/controller/probes/spec.ts). */
  probes?: NormalizedProbes;
}

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export interface NormalizedProbe {
  handler:
    | { kind: 'exec'; command: string[] }
    | { kind: 'httpGet'; path: string; port: number; host?: string; scheme: 'HTTP' | 'HTTPS'; headers: { name: string; value: string }[] }
    | { kind: 'tcpSocket'; port: number; host?: string };
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  successThreshold: number;
  failureThreshold: number;
}

export type NormalizedProbes = Partial<Record<ProbeKind, NormalizedProbe>>;

/** Where a desired container was declared. */
export type SourceRef =
  /** revision: the Git commit (full hash) the file was read from, for the Git source. */
  { kind: 'file'; file: string; line: number; revision?: string } | { kind: 'kube'; uid: string; generation: number; resourceVersion?: string };

/** One container the user wants, keyed by `namespace/name`. */
export interface DesiredContainer {
  key: string;
  namespace: string;
  name: string;
  spec: NormalizedSpec;
  source: SourceRef;
}

export function containerKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  if (i < 0) return { namespace: 'default', name: key };
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
