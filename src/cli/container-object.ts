/**
 * A managed container as a Kubernetes object (`acetate get -o yaml|json`): apiVersion, kind,
 * metadata, spec (the applied spec, in the CRD's shape) and status (the loop's last status when
 * `acetate run` wrote one, else computed from what runs now), the shape `kubectl get container -o
 * yaml` shows in Kubernetes mode, so one jq/yq expression works in both modes.
 */
import { API_VERSION, KIND, type ContainerManifest, type ContainerStatus } from '../api/types.js';
import { specToManifest } from '../api/to-manifest.js';
import type { ActualContainer } from '../runtime/runtime.js';
import { computeStatus, formatResources } from '../controller/status.js';
import type { StatusRecord, Waiting } from '../contracts/status-record.js';
import { decideRestart } from '../plan/restart.js';

export const SOURCE_ANNOTATION = 'acetate.dev/source';

export function currentStatus(c: ActualContainer, rec: Pick<StatusRecord, 'status'> | undefined, now: number): ContainerStatus {
  // The loop's status is what `acetate run` last saw; a process that changed since (apply-only
  // use, or a run that stopped) is described as it is now.
  if (rec && rec.status.pid === c.process.pid && (rec.status.phase === 'Running') === (c.process.state === 'running')) {
    // Limits and restarts as they are now (an apply may have resized since the loop looked).
    const status: ContainerStatus = { ...rec.status, restartCount: c.restartCount };
    if (c.process.state === 'running') status.resources = formatResources(c.limits);
    return status;
  }
  const desired = { key: c.key, namespace: c.namespace, name: c.name, spec: c.applied.spec, source: c.applied.source };
  return computeStatus({ key: c.key, desired, actual: c, previous: rec?.status, now, ...policyHold(c) });
}

/**
 * An exited process its restartPolicy does not run again is final (Failed or Stopped), whether or
 * not the loop has written its record of the exit yet: without this, `describe` read in between
 * showed such a job Pending. A restart the policy wants is left to the loop (it may be in back-off).
 */
function policyHold(c: ActualContainer): { waiting?: Waiting } {
  if (c.process.state !== 'exited' || c.applied.spec.state === 'Stopped') return {};
  const d = decideRestart(c.applied.spec, c, undefined);
  return 'held' in d ? { waiting: { reason: d.held.reason, message: d.held.message } } : {};
}

export function containerObject(c: ActualContainer, rec?: Pick<StatusRecord, 'status'>, now = Date.now()): ContainerManifest {
  const src = c.applied.source;
  const metadata: ContainerManifest['metadata'] = { name: c.name, namespace: c.namespace, creationTimestamp: c.applied.createdAt };
  if (src.kind === 'kube') {
    metadata.uid = src.uid;
    metadata.generation = src.generation;
    if (src.resourceVersion) metadata.resourceVersion = src.resourceVersion;
  } else {
    metadata.annotations = { [SOURCE_ANNOTATION]: `${src.file}:${src.line}` };
  }
  return { apiVersion: API_VERSION, kind: KIND, metadata, spec: specToManifest(c.applied.spec), status: currentStatus(c, rec, now) };
}

/** Several objects, as kubectl prints a list. */
export function containerList(items: ContainerManifest[]): {
  apiVersion: 'v1';
  kind: 'List';
  metadata: { resourceVersion: string };
  items: ContainerManifest[];
} {
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items };
}
