/**
 * Seccomp for containers: Docker's default profile, as Debian ships it (package
 * golang-github-docker-docker-dev: profiles/seccomp/default.json of moby 20.10), translated into
 * the OCI `linux.seccomp` form runc reads. Podman's profile, Debian's containers-common
 * /usr/share/containers/seccomp.json (package golang-github-containers-common), is the same format
 * and can be chosen per node (ACETATE_SECCOMP_PROFILE) or per container (Localhost).
 *
 * Why Docker's as the default: the containers-common profile of Debian 12 (0.50) allows unshare,
 * clone, clone3 and mount to every container, so `unshare -Urm sh -c 'mount -t tmpfs x /mnt'`
 * succeeds under it (measured) — the kernel attack surface this default is meant to close.
 * Docker's profile allows those only with CAP_SYS_ADMIN (and clone without namespace flags).
 *
 * Both files are in the containers/common ("moby") profile format, not OCI's: each rule carries
 * `includes`/`excludes` conditions on the container's capabilities, the architecture and the kernel
 * version, and `archMap` says which sub-architectures go with the native one. Docker and Podman
 * resolve those conditions for each container (moby profiles/seccomp setupSeccomp, containers/common
 * pkg/seccomp). No npm library does this translation, so it is done here, rule by rule the same way:
 *   - architectures: the native one and its sub-architectures from archMap;
 *   - a rule is kept when every `includes.caps` is in the container's bounding set, none of
 *     `excludes.caps` is, the native arch is in `includes.arches` (if given) and not in
 *     `excludes.arches`, and the running kernel is at least `includes.minKernel`;
 *   - names, action, errnoRet and args are copied as they are.
 * No rule is written by hand: the profile file is the one source.
 */
import { ProfileFileError, readProfileFile } from './seccomp-file.js';
import os from 'node:os';

/** Docker's default profile, from Debian's golang-github-docker-docker-dev. */
export const DEFAULT_SECCOMP_PROFILE = '/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json';
/** Podman's default profile, from Debian's golang-github-containers-common. */
export const PODMAN_SECCOMP_PROFILE = '/usr/share/containers/seccomp.json';

export type SeccompProfileType = 'RuntimeDefault' | 'Unconfined' | 'Localhost';

export interface SeccompProfileRef {
  type: SeccompProfileType;
  /** With Localhost: an absolute path of a profile in one of the node's profile dirs (seccomp-file.ts). */
  localhostProfile?: string;
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}

/** OCI runtime-spec `linux.seccomp`. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSeccompSyscall[];
}

/** One rule of the containers/common profile format. */
interface CommonRule {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[] | null;
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[]; minKernel?: string };
}

interface CommonProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  flags?: string[];
  syscalls?: CommonRule[];
}

export class SeccompError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SeccompError';
  }
}

/** Node's process.arch → libseccomp's name and the Go name the profile's `arches` use. */
const ARCHES: Record<string, [scmp: string, go: string]> = {
  x64: ['SCMP_ARCH_X86_64', 'amd64'],
  arm64: ['SCMP_ARCH_AARCH64', 'arm64'],
  ia32: ['SCMP_ARCH_X86', '386'],
  arm: ['SCMP_ARCH_ARM', 'arm'],
  s390x: ['SCMP_ARCH_S390X', 's390x'],
  ppc64: ['SCMP_ARCH_PPC64LE', 'ppc64le'],
  riscv64: ['SCMP_ARCH_RISCV64', 'riscv64'],
};

/** "5.8" ≤ "6.18.44-fc" ? (major.minor, as containers/common compares). */
function kernelAtLeast(min: string, release: string): boolean {
  const parse = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 2)
      .map((n) => parseInt(n, 10) || 0);
  const [a, b] = parse(release);
  const [c, d] = parse(min);
  return a! > c! || (a === c && b! >= d!);
}

export interface TranslateOptions {
  /** The container's bounding capabilities (CAP_*). */
  capabilities: readonly string[];
  /** process.arch (default: this machine's). */
  arch?: string;
  /** uname -r (default: this machine's). */
  kernelRelease?: string;
}

/** containers/common profile → OCI linux.seccomp for one container. An OCI profile passes through. */
export function translateProfile(profile: unknown, opts: TranslateOptions): OciSeccomp {
  const p = profile as CommonProfile;
  if (!p || typeof p !== 'object' || typeof p.defaultAction !== 'string') throw new SeccompError('not a seccomp profile: no defaultAction');
  const arch = ARCHES[opts.arch ?? process.arch];
  if (!arch) throw new SeccompError(`no seccomp architecture known for ${opts.arch ?? process.arch}`);
  const [scmpArch, goArch] = arch;
  const release = opts.kernelRelease ?? os.release();
  const caps = new Set(opts.capabilities);
  let architectures = p.architectures ?? [];
  if (architectures.length === 0 && p.archMap) {
    const m = p.archMap.find((a) => a.architecture === scmpArch);
    architectures = m ? [m.architecture, ...(m.subArchitectures ?? [])] : [];
  }
  const syscalls: OciSeccompSyscall[] = [];
  for (const r of p.syscalls ?? []) {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.arches?.length && !inc.arches.includes(goArch)) continue;
    if (exc.arches?.includes(goArch)) continue;
    if (inc.caps?.some((c) => !caps.has(c))) continue;
    if (exc.caps?.some((c) => caps.has(c))) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel, release)) continue;
    const names = r.names?.length ? r.names : r.name ? [r.name] : [];
    if (names.length === 0) continue;
    const out: OciSeccompSyscall = { names: [...names], action: r.action };
    if (r.errnoRet !== undefined) out.errnoRet = r.errnoRet;
    if (r.args?.length) out.args = r.args.map((a) => ({ index: a.index, value: a.value, ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}), op: a.op }));
    syscalls.push(out);
  }
  const out: OciSeccomp = { defaultAction: p.defaultAction, syscalls };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  if (architectures.length) out.architectures = [...architectures];
  if (p.flags?.length) out.flags = [...p.flags];
  return out;
}

const cache = new Map<string, unknown>();

/**
 * Parsed once per process and path (the file is read at every start otherwise). A Localhost
 * profile (`localhost`) is read again at each start: it is checked where it lies each time, and
 * a node's profile dir may change.
 */
export function loadProfile(file: string, opts: { localhost?: boolean } = {}): unknown {
  let parsed = opts.localhost ? undefined : cache.get(file);
  if (parsed === undefined) {
    let text: string;
    try {
      text = readProfileFile(file, { localhost: !!opts.localhost });
    } catch (err) {
      const hint =
        file === DEFAULT_SECCOMP_PROFILE
          ? ' (install golang-github-docker-docker-dev: scripts/setup.sh does)'
          : file === PODMAN_SECCOMP_PROFILE
            ? ' (install golang-github-containers-common)'
            : '';
      throw new SeccompError(`${(err as Error).message}${hint}`, { cause: err });
    }
    try {
      parsed = JSON.parse(text) as unknown;
    } catch (err) {
      throw new SeccompError(`the seccomp profile ${file} is not JSON`, { cause: err });
    }
    if (!opts.localhost) cache.set(file, parsed);
  }
  return parsed;
}

/**
 * The `linux.seccomp` of a container: Docker's/Podman's default unless the spec says Unconfined
 * (none) or Localhost (a profile file on the node). Privileged containers get none, as with Docker.
 */
export function seccompFor(
  ref: SeccompProfileRef | undefined,
  opts: TranslateOptions & { privileged: boolean; defaultProfile?: string },
): OciSeccomp | undefined {
  const type = ref?.type ?? 'RuntimeDefault';
  if (type === 'Unconfined' || (opts.privileged && type === 'RuntimeDefault')) return undefined;
  const file = type === 'Localhost' ? ref?.localhostProfile : (opts.defaultProfile ?? DEFAULT_SECCOMP_PROFILE);
  if (!file || !file.startsWith('/')) throw new SeccompError(`seccompProfile Localhost needs an absolute localhostProfile path, not '${file ?? ''}'`);
  try {
    return translateProfile(loadProfile(file, { localhost: type === 'Localhost' }), opts);
  } catch (err) {
    if (err instanceof SeccompError && err.cause instanceof ProfileFileError) throw err;
    throw new SeccompError(`seccomp profile ${file}: ${(err as Error).message}`, { cause: err });
  }
}
