/**
 * A pure model of a node for plan tests: applies planned actions to an in-memory actual state
 * the way the runtime would. Used only to check plan's properties, never to test containers.
 */
import { hashOf } from '../../src/api/hash.js';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest, DesiredContainer, NormalizedSpec } from '../../src/api/types.js';
import type { Action } from '../../src/plan/actions.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';

export function desired(name: string, spec: Partial<ContainerManifest['spec']> = {}, file = '/m/a.yaml'): DesiredContainer {
  const m: ContainerManifest = {
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name },
    spec: { template: 'host', command: ['/bin/sleep', '1000'], ...spec },
  };
  return normalizeManifest(m, { kind: 'file', file, line: 1 });
}

export function actualFrom(
  d: DesiredContainer,
  process: ActualContainer['process'] = { state: 'running', pid: 100 },
  spec: NormalizedSpec = d.spec,
): ActualContainer {
  return {
    key: d.key,
    namespace: d.namespace,
    name: d.name,
    id: `${d.namespace}_${d.name}`,
    applied: { namespace: d.namespace, name: d.name, spec, specHash: hashOf(spec), source: d.source, createdAt: '2026-01-01T00:00:00Z' },
    process,
    limits: process.state === 'running' ? { ...spec.resources } : {},
    restartCount: 0,
    ...(spec.network === 'bridge' ? { network: { ip: '10.90.0.2', ports: spec.ports ?? [] } } : {}),
  };
}

/** Applies actions to a copy of `actual` as a runtime would. */
export function simulate(actions: Action[], actual: Map<string, ActualContainer>): Map<string, ActualContainer> {
  const next = new Map(actual);
  for (const a of actions) {
    const cur = next.get(a.key);
    switch (a.kind) {
      case 'create':
      case 'replace':
        next.set(a.key, actualFrom(a.desired, a.desired.spec.state === 'Running' ? { state: 'running', pid: 200 } : { state: 'absent' }));
        break;
      case 'start':
      case 'restart':
        next.set(a.key, { ...actualFrom(a.desired, { state: 'running', pid: 300 }), restartCount: (cur?.restartCount ?? 0) + 1 });
        break;
      case 'stop':
        next.set(a.key, actualFrom(a.desired, { state: 'absent' }));
        break;
      case 'resize':
      case 'ports':
      case 'network':
        next.set(a.key, actualFrom(a.desired, cur!.process));
        break;
      case 'configure':
        next.set(a.key, { ...actualFrom(a.desired, cur!.process), limits: cur!.limits });
        break;
      case 'kill':
        next.set(a.key, { ...cur!, process: { state: 'exited', exitCode: 143, pid: a.pid } });
        break;
      case 'destroy':
        next.delete(a.key);
        break;
    }
  }
  return next;
}
