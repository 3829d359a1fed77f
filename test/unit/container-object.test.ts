/**
 * The Container object `acetate get -o yaml|json` prints: in Kubernetes mode the same identity
 * (uid, generation) and the same status the status writer puts on the object, so one jq/yq
 * expression reads both; in file mode the source file and line in an annotation.
 */
import assert from 'node:assert/strict';
import { containerObject, containerList } from '../../src/cli/container-object.js';
import { validateManifest } from '../../src/api/validate.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import { testSpec } from '../support/test-spec.js';
import { normalizeProbe } from '../../src/api/probes.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const NOW = Date.UTC(2026, 0, 2);

function actual(source: ActualContainer['applied']['source']): ActualContainer {
  return {
    key: 'team/web',
    namespace: 'team',
    name: 'web',
    id: 'team_web',
    applied: {
      namespace: 'team',
      name: 'web',
      spec: testSpec({ resources: { memoryBytes: 64 * 2 ** 20 } }),
      specHash: 'h',
      source,
      createdAt: '2026-01-01T00:00:00.000Z',
    },
    process: { state: 'running', pid: 4242, startedAt: '2026-01-01T00:00:01.000Z' },
    limits: { memoryBytes: 64 * 2 ** 20 },
    restartCount: 2,
  };
}

describe('Container objects (acetate get -o yaml|json)', () => {
  it("Kubernetes mode: uid and generation, and the loop's status as the status writer sends it", () => {
    const a = actual({ kind: 'kube', uid: 'u-1', generation: 7, resourceVersion: '99' });
    const status = {
      observedGeneration: 7,
      phase: 'Running' as const,
      node: 'n1',
      pid: 4242,
      restartCount: 2,
      startedAt: '2026-01-01T00:00:01.000Z',
      resources: { memory: '64Mi' },
      conditions: [
        {
          type: 'Ready',
          status: 'False' as const,
          reason: 'ReadinessProbe',
          message: 'readiness probe has not succeeded yet',
          lastTransitionTime: '2026-01-01T00:00:02.000Z',
          observedGeneration: 7,
        },
      ],
    };
    const rec = { key: 'team/web', namespace: 'team', name: 'web', status, problems: [], recentActions: [], updatedAt: '' } as StatusRecord;
    const o = containerObject(a, rec, NOW);
    assert.deepEqual(o.metadata, {
      name: 'web',
      namespace: 'team',
      creationTimestamp: '2026-01-01T00:00:00.000Z',
      uid: 'u-1',
      generation: 7,
      resourceVersion: '99',
    });
    assert.deepEqual(o.status, status);
    const v = validateManifest(o);
    assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
  });

  it('file mode without a loop: status computed from what runs; the source in an annotation; a List of several', () => {
    const o = containerObject(actual({ kind: 'file', file: '/etc/acetate/containers/web.yaml', line: 4 }), undefined, NOW);
    assert.equal(o.metadata.annotations?.['acetate.dev/source'], '/etc/acetate/containers/web.yaml:4');
    assert.equal(o.status?.phase, 'Running');
    assert.equal(o.status?.pid, 4242);
    assert.equal(o.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const list = containerList([o]);
    assert.equal(list.kind, 'List');
    assert.equal(list.items.length, 1);
  });

  it('a running process with a readiness or startup probe is not Ready before the loop has seen a probe pass (liveness alone does not hold it back)', () => {
    const probed = (kind: 'readiness' | 'startup' | 'liveness'): ActualContainer => {
      const a = actual({ kind: 'file', file: '/etc/acetate/containers/web.yaml', line: 4 });
      a.applied.spec = { ...a.applied.spec, probes: { [kind]: normalizeProbe({ tcpSocket: { port: 80 } }) } };
      return a;
    };
    for (const kind of ['readiness', 'startup'] as const) {
      const ready = containerObject(probed(kind), undefined, NOW).status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'False', kind);
      assert.equal(ready?.reason, 'ProbesPending', kind);
      assert.match(ready?.message ?? '', /pid 4242; no probe has passed/);
    }
    assert.equal(containerObject(probed('liveness'), undefined, NOW).status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it("an exit its restartPolicy does not restart is final at once, before the loop's record of it; one the policy restarts is left to the loop", () => {
    const exited = (restartPolicy: 'Never' | 'Always' | 'OnFailure', exitCode: number): ActualContainer => {
      const a = actual({ kind: 'file', file: '/etc/acetate/containers/job.yaml', line: 1 });
      a.applied.spec = { ...a.applied.spec, restartPolicy };
      a.process = { state: 'exited', pid: 4242, exitCode, startedAt: '2026-01-01T00:00:01.000Z', finishedAt: '2026-01-01T00:00:02.000Z' };
      return a;
    };
    // The loop's last record still describes the process as running (its exit not yet written).
    const running = {
      key: 'team/web',
      namespace: 'team',
      name: 'web',
      status: { phase: 'Running', pid: 4242 },
      problems: [],
      recentActions: [],
      updatedAt: '',
    } as StatusRecord;
    const never = containerObject(exited('Never', 4), running, NOW).status;
    assert.equal(never?.phase, 'Failed');
    assert.equal(never?.lastExitCode, 4);
    assert.equal(never?.conditions?.find((c) => c.type === 'Ready')?.reason, 'RestartPolicy');
    assert.equal(containerObject(exited('OnFailure', 0), running, NOW).status?.phase, 'Stopped');
    assert.equal(containerObject(exited('Always', 4), running, NOW).status?.phase, 'Pending');
    assert.equal(containerObject(exited('OnFailure', 1), undefined, NOW).status?.phase, 'Pending');
  });
});
