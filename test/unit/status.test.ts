import assert from 'node:assert/strict';
import { computeStatus, findCondition, mergeConditions, type StatusInput } from '../../src/controller/status.js';
import { desired, actualFrom } from '../support/model.js';
import type { ContainerStatus, DesiredContainer } from '../../src/api/types.js';

const T0 = Date.UTC(2024, 0, 1);

function status(input: Partial<StatusInput> & { now?: number }): ContainerStatus {
  return computeStatus({ key: 'default/web', now: T0, ...input });
}

describe('status', () => {
  const d = desired('web', { resources: { memory: '64Mi', cpu: '500m' } });

  it('a converged running container is Running, Ready, Synced, no resize pending', () => {
    const a = actualFrom(d, { state: 'running', pid: 42, startedAt: '2024-01-01T00:00:00Z' });
    const s = status({ desired: d, actual: a, node: 'n1' });
    assert.equal(s.phase, 'Running');
    assert.equal(s.pid, 42);
    assert.equal(s.node, 'n1');
    assert.equal(s.restartCount, 0);
    assert.deepEqual(s.resources, { cpu: '500m', memory: '64Mi' });
    assert.equal(findCondition(s, 'Ready')?.status, 'True');
    assert.equal(findCondition(s, 'Synced')?.status, 'True');
    assert.equal(findCondition(s, 'Synced')?.reason, 'Converged');
    assert.equal(findCondition(s, 'ResizePending')?.status, 'False');
    for (const c of s.conditions!) assert.equal(c.lastTransitionTime, new Date(T0).toISOString());
  });

  it('keeps lastTransitionTime while a condition keeps its status, moves it when the status flips', () => {
    const a = actualFrom(d, { state: 'running', pid: 42 });
    const s1 = status({ desired: d, actual: a });
    const s2 = status({ desired: d, actual: a, previous: s1, now: T0 + 60_000, error: { message: 'boom', retry: 'backoff', action: 'resize' } });
    assert.equal(findCondition(s2, 'Ready')?.lastTransitionTime, new Date(T0).toISOString(), 'Ready unchanged');
    assert.equal(findCondition(s2, 'Synced')?.status, 'False');
    assert.equal(findCondition(s2, 'Synced')?.reason, 'ReconcileError');
    assert.match(findCondition(s2, 'Synced')!.message!, /resize: boom/);
    assert.equal(findCondition(s2, 'Synced')?.lastTransitionTime, new Date(T0 + 60_000).toISOString());
    const s3 = status({ desired: d, actual: a, previous: s2, now: T0 + 120_000, error: { message: 'boom again', retry: 'backoff' } });
    assert.equal(findCondition(s3, 'Synced')?.lastTransitionTime, new Date(T0 + 60_000).toISOString(), 'still False: time kept');
    assert.match(findCondition(s3, 'Synced')!.message!, /boom again/);
  });

  it('HostViewCurrent: absent until a marker fails; False while it does, NoFailure after; none for a container that does not run', () => {
    const a = actualFrom(d, { state: 'running', pid: 42 });
    const s0 = status({ desired: d, actual: a });
    assert.equal(findCondition(s0, 'HostViewCurrent'), undefined, 'no failure ever: no condition');
    const s1 = status({ desired: d, actual: a, previous: s0, hostView: 'its disk is full' });
    assert.equal(findCondition(s1, 'HostViewCurrent')?.status, 'False');
    assert.equal(findCondition(s1, 'HostViewCurrent')?.reason, 'MarkersNotPlaced');
    assert.match(findCondition(s1, 'HostViewCurrent')!.message!, /may show in the container.*its disk is full/);
    assert.equal(findCondition(s1, 'Ready')?.status, 'True', 'the process still runs');
    const s2 = status({ desired: d, actual: a, previous: s1, now: T0 + 5_000 });
    assert.equal(findCondition(s2, 'HostViewCurrent')?.status, 'True');
    assert.equal(findCondition(s2, 'HostViewCurrent')?.reason, 'NoFailure');
    const stopped = actualFrom(d, { state: 'exited', exitCode: 0 });
    assert.equal(findCondition(status({ desired: d, actual: stopped, previous: s1, hostView: 'its disk is full' }), 'HostViewCurrent'), undefined);
  });

  it('a deferred resize is ResizePending=True reason Deferred', () => {
    const a = actualFrom(d, { state: 'running', pid: 42 });
    const s = status({ desired: d, actual: a, deferred: [{ resource: 'memory', reason: 'usage 300Mi is above the new limit 256Mi' }] });
    const c = findCondition(s, 'ResizePending')!;
    assert.equal(c.status, 'True');
    assert.equal(c.reason, 'Deferred');
    assert.match(c.message!, /memory: usage 300Mi/);
  });

  it('an invalid manifest: Synced=False InvalidManifest with file, line and message; still Running', () => {
    const a = actualFrom(d, { state: 'running', pid: 42 });
    const s = status({
      actual: a,
      protectedKey: true,
      problems: [{ origin: '/m/a.yaml', line: 7, field: 'spec.resources.memory', message: "'lots' is not a quantity", keys: ['default/web'], kind: 'invalid' }],
    });
    assert.equal(s.phase, 'Running');
    const c = findCondition(s, 'Synced')!;
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'InvalidManifest');
    assert.match(c.message!, /\/m\/a\.yaml:7: spec\.resources\.memory: 'lots' is not a quantity/);
  });

  it('a conflict: Synced=False Conflict', () => {
    const s = status({
      actual: actualFrom(d),
      protectedKey: true,
      problems: [{ origin: '/m/b.yaml', message: 'declared twice', keys: ['default/web'], kind: 'conflict' }],
    });
    assert.equal(findCondition(s, 'Synced')?.reason, 'Conflict');
  });

  it('crash-loop back-off: Pending, Ready=False CrashLoopBackOff, restarts and last exit code reported', () => {
    const a = { ...actualFrom(d, { state: 'exited', exitCode: 3, startedAt: '2024-01-01T00:00:00Z', finishedAt: '2024-01-01T00:00:01Z' }), restartCount: 2 };
    const s = status({ desired: d, actual: a, waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container' } });
    assert.equal(s.phase, 'Pending');
    assert.equal(s.restartCount, 2);
    assert.equal(s.lastExitCode, 3);
    assert.equal(s.pid, undefined);
    assert.equal(findCondition(s, 'Ready')?.reason, 'CrashLoopBackOff');
  });

  it('exited and not restarted by policy: Failed on a non-zero code, Stopped on 0', () => {
    const never: DesiredContainer = desired('web', { restartPolicy: 'Never' });
    const w = { reason: 'RestartPolicy', message: 'not restarted' };
    assert.equal(status({ desired: never, actual: actualFrom(never, { state: 'exited', exitCode: 1 }), waiting: w }).phase, 'Failed');
    assert.equal(status({ desired: never, actual: actualFrom(never, { state: 'exited', exitCode: 0 }), waiting: w }).phase, 'Stopped');
  });

  it('desired Stopped and not running is Ready (Stopped)', () => {
    const stopped = desired('web', { state: 'Stopped' });
    const s = status({ desired: stopped, actual: actualFrom(stopped, { state: 'absent' }) });
    assert.equal(s.phase, 'Stopped');
    assert.equal(findCondition(s, 'Ready')?.status, 'True');
    assert.equal(findCondition(s, 'Ready')?.reason, 'Stopped');
  });

  it('not created yet: Pending; a terminal error: Failed with the message', () => {
    assert.equal(status({ desired: d }).phase, 'Pending');
    const s = status({ desired: d, error: { message: 'template busybox not found', action: 'create', retry: 'terminal' } });
    assert.equal(s.phase, 'Failed');
    assert.equal(findCondition(s, 'Synced')?.reason, 'Failed');
    assert.match(findCondition(s, 'Synced')!.message!, /waiting for a change/);
  });

  it("an error with a reason (the network driver's SubnetFull, PortConflict, PortInUse) is the reason of Ready=False and Synced=False", () => {
    const s = status({
      desired: d,
      actual: actualFrom(d, { state: 'absent' }),
      error: { message: 'no address left for default/web in 10.90.0.0/29', action: 'start', retry: 'backoff', reason: 'SubnetFull' },
    });
    assert.deepEqual([findCondition(s, 'Ready')?.status, findCondition(s, 'Ready')?.reason], ['False', 'SubnetFull']);
    assert.match(findCondition(s, 'Ready')!.message!, /no address left/);
    assert.equal(findCondition(s, 'Synced')?.reason, 'SubnetFull');
    const running = status({ desired: d, actual: { ...actualFrom(d), network: { ip: '10.90.0.9', ports: [] } } });
    assert.equal(running.ip, '10.90.0.9', 'status.ip');
  });

  it('observedGeneration comes from a Kubernetes source', () => {
    const k: DesiredContainer = { ...d, source: { kind: 'kube', uid: 'u1', generation: 7 } };
    const s = status({ desired: k, actual: actualFrom(k) });
    assert.equal(s.observedGeneration, 7);
    for (const c of s.conditions!) assert.equal(c.observedGeneration, 7);
  });

  it('mergeConditions only moves lastTransitionTime on a status change', () => {
    const prev = [{ type: 'Ready', status: 'True' as const, reason: 'Running', lastTransitionTime: 'then' }];
    assert.equal(mergeConditions(prev, [{ type: 'Ready', status: 'True', reason: 'Other' }], T0)[0]!.lastTransitionTime, 'then');
    assert.equal(mergeConditions(prev, [{ type: 'Ready', status: 'False' }], T0)[0]!.lastTransitionTime, new Date(T0).toISOString());
  });
});
