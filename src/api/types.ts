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
export type ResourceName = 'cpu' | 'memory' | 'pids';
export type NetworkMode = 'none' | 'host';
export type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';
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
  resources?: { cpu?: string | number; memory?: string | number; pids?: number };
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
  /** The image the container runs, and its resolved digest (as Kubernetes' containerStatuses[].imageID). */
  image?: string;
  imageID?: string;
  resources?: { cpu?: string; memory?: string; pids?: number };
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
  resizePolicy: Record<ResourceName, ResizeRestartPolicy>;
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
