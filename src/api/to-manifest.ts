/**
 * NormalizedSpec → the spec as a user writes it (the CRD's shape), the inverse of normalizeSpec up
 * to defaults: what `acetate get -o yaml` prints, so that it reads like `kubectl get container -o
 * yaml` and validates against the CRD.
 */
import { formatCpu, formatMemory } from './quantity.js';
import { PROBE_FIELDS, PROBE_KINDS } from './probes.js';
import { RESOURCE_NAMES, type ContainerSpec, type ResourceName, type NormalizedProbe, type NormalizedSpec, type Probe } from './types.js';

export function probeToManifest(p: NormalizedProbe): Probe {
  const h = p.handler;
  const out: Probe = {};
  if (h.kind === 'exec') out.exec = { command: [...h.command] };
  else if (h.kind === 'httpGet') {
    out.httpGet = { path: h.path, port: h.port, scheme: h.scheme };
    if (h.host !== undefined) out.httpGet.host = h.host;
    if (h.headers.length) out.httpGet.httpHeaders = h.headers.map((x) => ({ ...x }));
  } else {
    out.tcpSocket = { port: h.port };
    if (h.host !== undefined) out.tcpSocket.host = h.host;
  }
  out.initialDelaySeconds = p.initialDelaySeconds;
  out.periodSeconds = p.periodSeconds;
  out.timeoutSeconds = p.timeoutSeconds;
  out.successThreshold = p.successThreshold;
  out.failureThreshold = p.failureThreshold;
  return out;
}

export function specToManifest(s: NormalizedSpec): ContainerSpec {
  const out: ContainerSpec = {
    ...(s.image ? { image: s.image.ref, ...(s.imagePullPolicy ? { imagePullPolicy: s.imagePullPolicy } : {}) } : { template: s.template }),
    // An image container may leave command and workingDir to the image (normalized to [] and ''),
    // which the CRD refuses (command needs an item, workingDir an absolute path): left out, as written.
    ...(s.command.length ? { command: [...s.command] } : {}),
    args: [...s.args],
    env: s.env.map((e) => ({ name: e.name, value: e.value })),
    ...(s.workingDir ? { workingDir: s.workingDir } : {}),
    state: s.state,
    resources: {},
    resizePolicy: [
      ...RESOURCE_NAMES.map((r) => ({ resourceName: r, restartPolicy: s.resizePolicy[r as Exclude<ResourceName, 'disk'>] })),
      ...(s.resizePolicy.disk ? [{ resourceName: 'disk' as const, restartPolicy: s.resizePolicy.disk }] : []),
    ],
    restartPolicy: s.restartPolicy,
    terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
    mounts: s.mounts.map((m) => ({ ...m })),
    network: s.network,
    securityContext: {
      privileged: s.security.privileged,
      noNewPrivileges: s.security.noNewPrivileges,
      capabilities: { add: [...s.security.capAdd], drop: [...s.security.capDrop] },
      ...(s.security.seccompProfile ? { seccompProfile: { ...s.security.seccompProfile } } : {}),
      // An applied spec holds hostUsers resolved (absent: the node's ids): said explicitly, whatever the node's default.
      hostUsers: s.security.hostUsers !== false,
    },
    ...(s.ports?.length ? { ports: s.ports.map((p) => ({ ...p })) } : {}),
    init: s.init !== false,
  };
  if (s.hostname) out.hostname = s.hostname;
  if (s.resources.cpuMillis !== undefined) out.resources!.cpu = formatCpu(s.resources.cpuMillis);
  if (s.resources.memoryBytes !== undefined) out.resources!.memory = formatMemory(s.resources.memoryBytes);
  if (s.resources.pids !== undefined) out.resources!.pids = s.resources.pids;
  if (s.resources.diskBytes !== undefined) out.resources!.disk = formatMemory(s.resources.diskBytes);
  if (s.nodeName !== undefined) out.nodeName = s.nodeName;
  for (const kind of PROBE_KINDS) {
    const p = s.probes?.[kind];
    if (p) out[PROBE_FIELDS[kind]] = probeToManifest(p);
  }
  return out;
}
