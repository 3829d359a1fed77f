/** `acetate get -o json` (Container objects, Kubernetes' shape) flattened for tests' assertions. */
import type { ContainerManifest } from '../../src/api/types.js';

export interface FlatContainer {
  name: string;
  namespace: string;
  /** runc id, namespace_name. */
  id: string;
  phase: string;
  pid?: number;
  restarts: number;
  desired: { state: string; cpu: string; memory: string; pids: number | string };
  /** Limits read from the cgroup while it runs. */
  actual: { cpu: string; memory: string; pids: number | string } | null;
  conditions: { type: string; status: string; reason?: string; message?: string }[];
  object: ContainerManifest;
}

export function flatContainers(stdout: string): FlatContainer[] {
  const parsed = JSON.parse(stdout) as ContainerManifest | { kind: 'List'; items: ContainerManifest[] };
  const items = parsed.kind === 'List' ? parsed.items : [parsed];
  return items.map((o) => {
    const ns = o.metadata.namespace ?? 'default';
    const r = o.spec.resources ?? {};
    const a = o.status?.resources;
    const running = o.status?.phase === 'Running';
    return {
      name: o.metadata.name,
      namespace: ns,
      id: `${ns}_${o.metadata.name}`,
      phase: o.status?.phase ?? 'Unknown',
      pid: o.status?.pid,
      restarts: o.status?.restartCount ?? 0,
      desired: { state: o.spec.state ?? 'Running', cpu: String(r.cpu ?? 'unlimited'), memory: String(r.memory ?? 'unlimited'), pids: r.pids ?? 'unlimited' },
      actual: running ? { cpu: a?.cpu ?? 'unlimited', memory: a?.memory ?? 'unlimited', pids: a?.pids ?? 'unlimited' } : null,
      conditions: (o.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
      object: o,
    };
  });
}
