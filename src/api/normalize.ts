/** Fills in defaults and parses quantities: a validated manifest becomes a DesiredContainer. */
import { parseCpu, parseDisk, parseMemory } from './quantity.js';
import { capabilityName } from './capabilities.js';
import { normalizeProbes } from './probes.js';
import { normalizePorts } from './ports.js';
import { nodeDefaultDisk } from './node-defaults.js';
import { defaultPullPolicy, formatReference, parseReference } from './image-reference.js';
import { qualifyImage } from './image-short-names.js';
import { containerKey, RESOURCE_NAMES, type ContainerManifest, type DesiredContainer, type NormalizedSpec, type SourceRef } from './types.js';

export function normalizeSpec(m: ContainerManifest): NormalizedSpec {
  const s = m.spec;
  const resizePolicy = Object.fromEntries(RESOURCE_NAMES.map((r) => [r, 'NotRequired'])) as NormalizedSpec['resizePolicy'];
  for (const p of s.resizePolicy ?? []) resizePolicy[p.resourceName] = p.restartPolicy;
  const privileged = s.securityContext?.privileged ?? false;
  const spec: NormalizedSpec = {
    template: s.template ?? '',
    command: [...(s.command ?? [])],
    args: [...(s.args ?? [])],
    env: (s.env ?? []).map((e) => ({ name: e.name, value: e.value ?? '' })),
    // With an image, no workingDir means the image's WorkingDir (see images/process.ts).
    workingDir: s.workingDir ?? (s.image !== undefined ? '' : '/'),
    hostname: s.hostname ?? m.metadata.name,
    state: s.state ?? 'Running',
    resources: {},
    resizePolicy,
    restartPolicy: s.restartPolicy ?? 'Always',
    terminationGracePeriodSeconds: s.terminationGracePeriodSeconds ?? 10,
    mounts: (s.mounts ?? []).map((x) => ({ hostPath: x.hostPath, containerPath: x.containerPath, readOnly: x.readOnly ?? false })),
    network: s.network ?? 'none',
    security: {
      privileged,
      noNewPrivileges: s.securityContext?.noNewPrivileges ?? !privileged,
      capAdd: (s.securityContext?.capabilities?.add ?? []).map(capabilityName).sort(),
      capDrop: (s.securityContext?.capabilities?.drop ?? []).map(capabilityName).sort(),
    },
  };
  if (s.resources?.cpu !== undefined) spec.resources.cpuMillis = parseCpu(s.resources.cpu);
  if (s.resources?.memory !== undefined) spec.resources.memoryBytes = parseMemory(s.resources.memory);
  if (s.resources?.pids !== undefined) spec.resources.pids = s.resources.pids;
  // No disk of its own: the node's default, when its admin set one (node-defaults.ts).
  const diskBytes = s.resources?.disk !== undefined ? parseDisk(s.resources.disk) : nodeDefaultDisk();
  if (diskBytes !== undefined) spec.resources.diskBytes = diskBytes;
  if (s.nodeName !== undefined) spec.nodeName = s.nodeName;
  const seccomp = s.securityContext?.seccompProfile;
  if (seccomp && seccomp.type !== 'RuntimeDefault') {
    spec.security.seccompProfile =
      seccomp.type === 'Localhost' ? { type: 'Localhost', localhostProfile: seccomp.localhostProfile ?? '' } : { type: seccomp.type };
  }
  // Kept as written, true too: absent is the node's default, which plan resolves (plan/user-namespace.ts).
  if (s.securityContext?.hostUsers !== undefined) spec.security.hostUsers = s.securityContext.hostUsers;
  if (s.securityContext?.runAsUser !== undefined) spec.security.runAsUser = s.securityContext.runAsUser;
  if (s.securityContext?.runAsGroup !== undefined) spec.security.runAsGroup = s.securityContext.runAsGroup;
  if (s.securityContext?.runAsNonRoot === true) spec.security.runAsNonRoot = true;
  if (s.init === false) spec.init = false;
  const probes = normalizeProbes(s);
  if (probes) spec.probes = probes;
  if (s.ports?.length) spec.ports = normalizePorts(s.ports);
  if (s.image !== undefined) {
    const ref = parseReference(qualifyImage(s.image)); // registries.conf short-name aliases, else docker.io
    spec.image = { ref: formatReference(ref) };
    spec.imagePullPolicy = s.imagePullPolicy ?? defaultPullPolicy(ref);
  }
  return spec;
}

export function normalizeManifest(m: ContainerManifest, source: SourceRef): DesiredContainer {
  const namespace = m.metadata.namespace ?? 'default';
  return { key: containerKey(namespace, m.metadata.name), namespace, name: m.metadata.name, spec: normalizeSpec(m), source };
}
