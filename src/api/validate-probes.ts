/**
 * Probe rules the CRD schema cannot say to ajv in plain words (the CRD carries the same rule as a
 * CEL validation for the API server): exactly one handler per probe, and successThreshold 1 for
 * liveness and startup probes, as Kubernetes requires.
 */
import type { PathSegment } from './validation-issue.js';
import { PROBE_FIELDS, PROBE_KINDS } from './probes.js';

export interface ProbeIssue {
  path: PathSegment[];
  message: string;
}

const HANDLERS = ['exec', 'httpGet', 'tcpSocket'] as const;

export function probeIssues(spec: Record<string, unknown>): ProbeIssue[] {
  const out: ProbeIssue[] = [];
  for (const kind of PROBE_KINDS) {
    const field = PROBE_FIELDS[kind];
    const p = spec[field];
    if (!p || typeof p !== 'object' || Array.isArray(p)) continue; // the schema reports it
    const probe = p as Record<string, unknown>;
    const set = HANDLERS.filter((h) => probe[h] !== undefined);
    if (set.length === 0) out.push({ path: ['spec', field], message: 'needs one of exec, httpGet or tcpSocket' });
    else if (set.length > 1) out.push({ path: ['spec', field, set[1]!], message: `a probe has exactly one handler: ${set.join(' and ')} are both set` });
    // 0 is the default (1), as Kubernetes defaults it before it validates.
    if (kind !== 'readiness' && typeof probe.successThreshold === 'number' && probe.successThreshold !== 1 && probe.successThreshold !== 0) {
      out.push({ path: ['spec', field, 'successThreshold'], message: `must be 1 for a ${kind} probe (as in Kubernetes)` });
    }
  }
  return out;
}
