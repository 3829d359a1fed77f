/**
 * The shape of an OCI runtime config (bundle/config.json), as far as acetate writes it. Types
 * only, so that the modules that build parts of it (init.ts, ../walls/) and oci-config.ts,
 * which puts them together, do not import each other.
 */
import type { OciLinuxResources } from './resources.js';
import type { OciSeccomp } from '../walls/seccomp.js';
import type { OciUserNamespace } from '../walls/userns.js';
import type { OciMount } from '../walls/oci-mount.js';

export type { OciMount };

export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  annotations: Record<string, string>;
  linux: {
    cgroupsPath: string;
    resources: OciLinuxResources;
    namespaces: { type: string; path?: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: OciSeccomp;
    uidMappings?: OciUserNamespace['uidMappings'];
    gidMappings?: OciUserNamespace['gidMappings'];
  };
}
