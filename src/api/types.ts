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
export type NetworkMode = 'none' | 'host';
/** Resources every normalized resizePolicy names (disk only when set, so that specs without it hash as before). */
export const RESOURCE_NAMES: readonly ResourceName[] = ['cpu', 'memory', 'pids'];

/** The spec as a user writes it (YAML / Kubernetes object). */
export interface ContainerSpec {
  template: string;
  command: string[];
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
  securityContext?: {
    privileged?: boolean;
    noNewPrivileges?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  nodeName?: string;
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
  template: string;
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
  security: { privileged: boolean; noNewPrivileges: boolean; capAdd: string[]; capDrop: string[] };
  nodeName?: string;
}

/** Where a desired container was declared. */
export type SourceRef =
  | { kind: 'file'; file: string; line: number }
  | { kind: 'kube'; uid: string; generation: number; resourceVersion?: string };

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
