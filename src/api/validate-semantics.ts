/**
 * The rules of a Container a CRD schema cannot express: names, minimum limits, NUL characters,
 * capabilities this node knows, mounts, ports, images, duplicate env names, probes, and the
 * securityContext combinations. They run on input the schema may have rejected, so each checks
 * types first.
 */
import type { ContainerManifest } from './types.js';
import { ALL_CAPABILITIES, capabilityName } from './capabilities.js';
import { protectedHostPathProblem } from './protected-paths.js';
import { CPU_PATTERN, MEMORY_PATTERN, MIN_DISK_BYTES, parseCpu, parseMemory, QuantityError } from './quantity.js';
import { probeIssues } from './validate-probes.js';
import { portIssues } from './validate-ports.js';
import { imageSpecIssues } from './validate-image.js';
import { isRecord, issue, show, type PathSegment, type ValidationIssue } from './validation-issue.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Smallest limits runc and the kernel can actually run a container with. */
export const MIN_MEMORY_BYTES = 4 * 1024 * 1024;
export const MIN_CPU_MILLIS = 10;

/** Rules the schema cannot say. Runs on input the schema may have rejected, so it checks types first. */
export function validateSemantics(m: ContainerManifest): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const meta = m.metadata as unknown;
  if (!meta || typeof meta !== 'object') return [issue(['metadata'], 'must be a mapping with a name')];
  const { name, namespace } = m.metadata;
  if (name === undefined) out.push(issue(['metadata', 'name'], 'required field is missing'));
  else if (typeof name !== 'string' || name.length > 63 || !DNS1123_LABEL.test(name))
    out.push(
      issue(
        ['metadata', 'name'],
        `${show(name)} is not a valid name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`,
      ),
    );
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)))
    out.push(issue(['metadata', 'namespace'], `${show(namespace)} is not a valid namespace: lowercase letters, digits and '-', at most 63 characters`));
  const spec = m.spec;
  const r = isRecord(spec.resources) ? spec.resources : undefined;
  const quantity = (field: 'cpu' | 'memory' | 'disk', parse: (q: string | number) => number, pattern: RegExp, min: number, minText: string, what: string) => {
    const q = r?.[field];
    if (q === undefined || (typeof q !== 'number' && (typeof q !== 'string' || !pattern.test(q)))) return; // the schema reports it
    try {
      if (parse(q) < min) out.push(issue(['spec', 'resources', field], `${show(q)} is below the smallest ${what} a container can run with (${minText})`));
    } catch (err) {
      if (!(err instanceof QuantityError)) throw err;
      out.push(issue(['spec', 'resources', field], err.message));
    }
  };
  quantity('memory', parseMemory, MEMORY_PATTERN, MIN_MEMORY_BYTES, '4Mi', 'memory limit');
  quantity('cpu', parseCpu, CPU_PATTERN, MIN_CPU_MILLIS, '10m', 'CPU limit');
  quantity('disk', parseMemory, MEMORY_PATTERN, MIN_DISK_BYTES, '16Mi, the smallest XFS filesystem', 'disk');
  const strings: [PathSegment[], unknown][] = [
    [['spec', 'workingDir'], spec.workingDir],
    ...(Array.isArray(spec.command) ? spec.command.map((v, i): [PathSegment[], unknown] => [['spec', 'command', i], v]) : []),
    ...(Array.isArray(spec.args) ? spec.args.map((v, i): [PathSegment[], unknown] => [['spec', 'args', i], v]) : []),
    ...(Array.isArray(spec.env) ? spec.env.map((v, i): [PathSegment[], unknown] => [['spec', 'env', i, 'value'], isRecord(v) ? v.value : undefined]) : []),
  ];
  for (const [p, v] of strings)
    if (typeof v === 'string' && v.includes('\0')) out.push(issue(p, 'must not contain a NUL character (a process cannot receive one)'));
  const caps = isRecord(spec.securityContext) && isRecord(spec.securityContext.capabilities) ? spec.securityContext.capabilities : {};
  for (const list of ['add', 'drop'] as const) {
    const names = (caps as Record<string, unknown>)[list];
    if (!Array.isArray(names)) continue;
    names.forEach((c, i) => {
      if (typeof c !== 'string' || !/^(CAP_)?[A-Z_]+$|^ALL$/.test(c)) return; // the schema reports it
      const name = capabilityName(c);
      if (name !== 'ALL' && !ALL_CAPABILITIES.includes(name)) {
        out.push(
          issue(['spec', 'securityContext', 'capabilities', list, i], `${show(c)} is not a Linux capability this node knows (e.g. NET_ADMIN, SYS_PTRACE)`),
        );
      }
    });
  }
  out.push(...securityContextIssues(spec.securityContext, spec.network));
  const seen = new Set<string>();
  (Array.isArray(spec.mounts) ? spec.mounts : []).forEach((mnt, i) => {
    if (!isRecord(mnt)) return;
    const own = typeof mnt.hostPath === 'string' ? protectedHostPathProblem(mnt.hostPath) : undefined;
    if (own) out.push(issue(['spec', 'mounts', i, 'hostPath'], own));
    for (const f of ['hostPath', 'containerPath'] as const) {
      if (typeof mnt[f] === 'string' && mnt[f].includes('\0')) out.push(issue(['spec', 'mounts', i, f], 'must not contain a NUL character'));
      else if (typeof mnt[f] === 'string' && mnt[f].split('/').includes('..'))
        out.push(issue(['spec', 'mounts', i, f], `${show(mnt[f])} must not contain '..'`));
    }
    if (typeof mnt.containerPath === 'string') {
      const norm = mnt.containerPath.replace(/\/+$/, '') || '/';
      if (norm === '/') out.push(issue(['spec', 'mounts', i, 'containerPath'], "cannot mount over the container's root"));
      // runc refuses mounts on /proc (procfs, which it mounts itself), and a bind there would hide the container's processes.
      if (norm === '/proc' || norm.startsWith('/proc/'))
        out.push(
          issue(
            ['spec', 'mounts', i, 'containerPath'],
            `${show(mnt.containerPath)} is inside /proc, the kernel's process filesystem: runc refuses mounts there`,
          ),
        );
      if (seen.has(norm)) out.push(issue(['spec', 'mounts', i, 'containerPath'], `${show(mnt.containerPath)} is mounted twice`));
      seen.add(norm);
    }
  });
  out.push(...portIssues(spec));
  for (const i of imageSpecIssues(spec as unknown as Record<string, unknown>)) out.push(issue(i.path, i.message));
  const envNames = new Set<string>();
  (Array.isArray(spec.env) ? spec.env : []).forEach((e, i) => {
    if (!isRecord(e) || typeof e.name !== 'string') return;
    if (envNames.has(e.name)) out.push(issue(['spec', 'env', i, 'name'], `${show(e.name)} is set twice`));
    envNames.add(e.name);
  });
  for (const p of probeIssues(spec as unknown as Record<string, unknown>)) out.push(issue(p.path, p.message));
  return out;
}

/** seccompProfile and hostUsers rules the schema cannot say (see src/runtime/walls/seccomp.ts, userns.ts). */
function securityContextIssues(sc: unknown, network: unknown): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const hostUsers = isRecord(sc) ? sc.hostUsers : undefined;
  // What cannot work in a user namespace, which is the default: the container must opt out of it
  // by its own word (README, User namespaces), as Kubernetes refuses hostNetwork with hostUsers: false.
  if (network === 'host' && hostUsers !== true)
    out.push(
      issue(
        ['spec', 'network'],
        `host needs securityContext.hostUsers: true${hostUsers === false ? ', not false' : ' (containers get a user namespace by default)'}: the node's network namespace belongs to the node's user namespace, so a container's root in its own could not configure it, and root of the node's network must be said explicitly`,
      ),
    );
  if (isRecord(sc) && sc.privileged === true && hostUsers !== true)
    out.push(
      issue(
        ['spec', 'securityContext', 'privileged'],
        `true needs hostUsers: true${hostUsers === false ? ', not false' : ' (containers get a user namespace by default)'}: a privileged container is the node's root, with every capability over the node`,
      ),
    );
  if (!isRecord(sc)) return out;
  const at = (...p: PathSegment[]): PathSegment[] => ['spec', 'securityContext', ...p];
  const sp = sc.seccompProfile;
  if (isRecord(sp) && typeof sp.type === 'string') {
    if (sp.type === 'Localhost' && typeof sp.localhostProfile !== 'string')
      out.push(issue(at('seccompProfile', 'localhostProfile'), 'required with type Localhost (an absolute path of a profile on the node)'));
    if (sp.type !== 'Localhost' && sp.localhostProfile !== undefined)
      out.push(issue(at('seccompProfile', 'localhostProfile'), `only goes with type Localhost, not ${show(sp.type)}`));
  }
  return out;
}
