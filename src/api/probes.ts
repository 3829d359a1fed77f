/**
 * Probes as written (Kubernetes' core/v1 Probe) → NormalizedProbe with Kubernetes' defaults:
 * periodSeconds 10, timeoutSeconds 1, successThreshold 1, failureThreshold 3,
 * initialDelaySeconds 0; httpGet path "/", scheme HTTP. A field given as 0 takes its default too, as in
 * Kubernetes (periodSeconds: 0 is 10).
 */
import type { NormalizedProbe, NormalizedProbes, Probe, ProbeKind, ContainerSpec } from './types.js';

export const PROBE_FIELDS: Record<ProbeKind, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> = {
  startup: 'startupProbe',
  readiness: 'readinessProbe',
  liveness: 'livenessProbe',
};

export const PROBE_KINDS: readonly ProbeKind[] = ['startup', 'readiness', 'liveness'];

export function normalizeProbe(p: Probe): NormalizedProbe {
  let handler: NormalizedProbe['handler'];
  if (p.exec) handler = { kind: 'exec', command: [...p.exec.command] };
  else if (p.httpGet) {
    handler = {
      kind: 'httpGet',
      path: p.httpGet.path ?? '/',
      port: p.httpGet.port,
      scheme: p.httpGet.scheme ?? 'HTTP',
      headers: (p.httpGet.httpHeaders ?? []).map((h) => ({ name: h.name, value: h.value })),
    };
    if (p.httpGet.host !== undefined) handler.host = p.httpGet.host;
  } else if (p.tcpSocket) {
    handler = { kind: 'tcpSocket', port: p.tcpSocket.port };
    if (p.tcpSocket.host !== undefined) handler.host = p.tcpSocket.host;
  } else {
    throw new Error('a probe needs exec, httpGet or tcpSocket'); // validation reports it first
  }
  return {
    handler,
    initialDelaySeconds: p.initialDelaySeconds ?? 0,
    // 0 (or absent) is the default, as Kubernetes' SetDefaults_Probe.
    periodSeconds: p.periodSeconds || 10,
    timeoutSeconds: p.timeoutSeconds || 1,
    successThreshold: p.successThreshold || 1,
    failureThreshold: p.failureThreshold || 3,
  };
}

/** The spec's probes, or undefined when it has none (so specs without probes keep their hash). */
export function normalizeProbes(s: ContainerSpec): NormalizedProbes | undefined {
  const out: NormalizedProbes = {};
  for (const kind of PROBE_KINDS) {
    const p = s[PROBE_FIELDS[kind]];
    if (p) out[kind] = normalizeProbe(p);
  }
  return Object.keys(out).length ? out : undefined;
}
