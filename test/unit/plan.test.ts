import assert from 'node:assert/strict';
import fc from 'fast-check';
import { plan } from '../../src/plan/plan.js';
import { renderPlan, summarizePlan, planToJson } from '../../src/plan/render.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import type { ContainerSpec, DesiredContainer } from '../../src/api/types.js';
import { actualFrom, desired, simulate } from '../support/model.js';
import { RUNC_GRANULARITY } from '../../src/runtime/runc/granularity.js';

function one(d: DesiredContainer | undefined, a: ActualContainer | undefined, extra: Partial<Parameters<typeof plan>[0]> = {}) {
  const key = (d ?? a)!.key;
  return plan({
    desired: new Map(d ? [[key, d]] : []),
    actual: new Map(a ? [[key, a]] : []),
    complete: true,
    ...extra,
  });
}

describe('plan (pure)', () => {
  it('does nothing when converged', () => {
    const d = desired('web', { resources: { cpu: '500m', memory: '256Mi', pids: 64 } });
    const p = one(d, actualFrom(d));
    assert.deepEqual(p.actions, []);
    assert.deepEqual(p.unchanged, ['default/web']);
    assert.match(summarizePlan(p), /No changes\. 1 container/);
  });

  it("a record whose hash does not match its spec is rewritten, whether the runtime reported that or plan hashed it; the runtime's word saves the hashing", () => {
    const d = desired('web', { resources: { cpu: '500m', memory: '256Mi' } });
    const stale = actualFrom(d);
    stale.applied = { ...stale.applied, specHash: '0000000000000000' };
    for (const holds of [undefined, false]) {
      const a = holds === undefined ? stale : { ...stale, appliedHashMatches: holds };
      const p = one(d, a);
      assert.deepEqual(
        p.actions.map((x) => [x.kind, x.reason]),
        [['configure', 'applied record is out of date']],
      );
    }
    // Reported as holding: taken as such (the runtime worked it out when it read the record).
    assert.deepEqual(one(d, { ...stale, appliedHashMatches: true }).actions, []);
    // A desired spec with its keys in another order is the same spec.
    const reordered = { ...d, spec: Object.fromEntries(Object.entries(d.spec).reverse()) as typeof d.spec };
    assert.deepEqual(one(reordered, actualFrom(d)).actions, []);
  });

  it('creates a declared container that does not exist', () => {
    const p = one(desired('web'), undefined);
    assert.equal(p.actions.length, 1);
    assert.equal(p.actions[0]!.kind, 'create');
    assert.match(renderPlan(p), /\+ create\s+default\/web/);
  });

  it('resizes memory in place and says so', () => {
    const before = desired('web', { resources: { memory: '256Mi' } });
    const after = desired('web', { resources: { memory: '512Mi' } });
    const p = one(after, actualFrom(before));
    assert.equal(p.actions.length, 1);
    const a = p.actions[0]!;
    assert.equal(a.kind, 'resize');
    assert.match(a.reason, /memory 256Mi → 512Mi \(in place\)/);
    assert.match(renderPlan(p), /~ resize\s+default\/web\s+memory 256Mi → 512Mi \(in place\)/);
  });

  it('restarts instead when resizePolicy says RestartContainer for that resource', () => {
    const policy = [{ resourceName: 'memory' as const, restartPolicy: 'RestartContainer' as const }];
    const before = desired('web', { resources: { memory: '256Mi', cpu: '1' }, resizePolicy: policy });
    const memOnly = desired('web', { resources: { memory: '512Mi', cpu: '1' }, resizePolicy: policy });
    assert.equal(one(memOnly, actualFrom(before)).actions[0]!.kind, 'restart');
    const cpuOnly = desired('web', { resources: { memory: '256Mi', cpu: '2' }, resizePolicy: policy });
    assert.equal(one(cpuOnly, actualFrom(before)).actions[0]!.kind, 'resize');
  });

  it('repairs drift: limits changed by hand are resized back', () => {
    const d = desired('web', { resources: { cpu: '500m' } });
    const a = actualFrom(d);
    a.limits = { cpuMillis: 2000 };
    const p = one(d, a);
    assert.equal(p.actions[0]!.kind, 'resize');
    assert.match(p.actions[0]!.reason, /cpu 2 → 500m \(in place, repairing drift\)/);
  });

  it('ignores the kernel rounding memory limits down to a page, as the runtime reports its granularity', () => {
    const d = desired('web', { resources: { memory: '100M' } });
    const a = actualFrom(d);
    a.limits = { memoryBytes: Math.floor(100e6 / 4096) * 4096 };
    assert.deepEqual(one(d, a, { granularity: RUNC_GRANULARITY }).actions, []);
    // The planner knows no page size of its own: without the runtime's fact the values differ.
    assert.equal(one(d, a).actions[0]?.kind, 'resize');
    a.limits = { memoryBytes: Math.floor(100e6 / 4096) * 4096 - 4096 };
    assert.equal(one(d, a, { granularity: RUNC_GRANULARITY }).actions[0]?.kind, 'resize', 'a page less is drift');
  });

  it('replaces for fields that cannot change in place, keeping the private area', () => {
    const before = desired('web');
    const after = desired('web', { command: ['/bin/sleep', '2000'], env: [{ name: 'A', value: '1' }] });
    const [a] = one(after, actualFrom(before)).actions;
    assert.equal(a!.kind, 'replace');
    assert.ok(a!.kind === 'replace' && !a!.discardPrivateArea);
    assert.deepEqual(a!.kind === 'replace' && a!.fields, ['command', 'env']);
    assert.match(a!.reason, /command, env changed.*private area kept/);
  });

  it('says in words that a template change deletes the private area', () => {
    const [a] = one(desired('web', { template: 'alpine' }), actualFrom(desired('web'))).actions;
    assert.equal(a!.kind, 'replace');
    assert.ok(a!.kind === 'replace' && a!.discardPrivateArea);
    assert.match(a!.reason, /template host → alpine: the private area will be deleted/);
  });

  it('starts and stops per desired state', () => {
    const d = desired('web');
    assert.equal(one(d, actualFrom(d, { state: 'absent' })).actions[0]!.kind, 'start');
    const stopped = desired('web', { state: 'Stopped' });
    assert.equal(one(stopped, actualFrom(d)).actions[0]!.kind, 'stop');
    assert.deepEqual(one(stopped, actualFrom(stopped, { state: 'absent' })).actions, []);
    // a stop interrupted after the process died (runc state and mount left): finish it
    const [finish] = one(stopped, actualFrom(d, { state: 'exited', exitCode: 137 })).actions;
    assert.equal(finish!.kind, 'stop');
    assert.match(finish!.reason, /finishing the stop/);
  });

  it('honours restartPolicy for a process that exited', () => {
    const never = desired('job', { restartPolicy: 'Never' });
    const neverPlan = one(never, actualFrom(never, { state: 'exited', exitCode: 1 }));
    assert.deepEqual(neverPlan.actions, []);
    assert.deepEqual(neverPlan.held, [{ key: 'default/job', reason: 'RestartPolicy', message: 'exited with code 1; restartPolicy Never does not restart it' }]);
    assert.deepEqual(neverPlan.unchanged, ['default/job'], 'nothing will ever be done: converged');
    assert.match(renderPlan(neverPlan), /! held +default\/job: not started again: exited with code 1; restartPolicy Never/);
    const onFailure = desired('job', { restartPolicy: 'OnFailure' });
    assert.deepEqual(one(onFailure, actualFrom(onFailure, { state: 'exited', exitCode: 0 })).actions, []);
    // An unknown exit code may have been 0: OnFailure does not run it again.
    const unknown = one(onFailure, actualFrom(onFailure, { state: 'exited', unsupervised: 'its supervisor was gone' }));
    assert.deepEqual(unknown.actions, []);
    assert.equal(unknown.held[0]?.reason, 'ExitCodeUnknown');
    assert.match(unknown.held[0]!.message, /unknown exit code \(its supervisor was gone\); restartPolicy OnFailure does not run again/);
    const [a] = one(onFailure, actualFrom(onFailure, { state: 'exited', exitCode: 3 })).actions;
    assert.equal(a!.kind, 'start');
    assert.match(a!.reason, /exited with code 3; restartPolicy OnFailure/);
    const always = desired('job', { restartPolicy: 'Always' });
    assert.equal(one(always, actualFrom(always, { state: 'exited', exitCode: 0 })).actions[0]!.kind, 'start');
  });

  it('records policy-only changes without touching the process', () => {
    const [a] = one(desired('web', { restartPolicy: 'Never' }), actualFrom(desired('web'))).actions;
    assert.equal(a!.kind, 'configure');
    assert.match(a!.reason, /restartPolicy changed \(no restart needed\)/);
  });

  it('destroys managed containers no longer declared', () => {
    const p = one(undefined, actualFrom(desired('old')));
    assert.equal(p.actions[0]!.kind, 'destroy');
    assert.match(renderPlan(p), /- destroy\s+default\/old\s+no longer declared/);
  });

  it('never destroys when the desired state is incomplete (missing or empty directory)', () => {
    const p = one(undefined, actualFrom(desired('old')), { complete: false, incompleteReason: 'no manifest files in /m' });
    assert.deepEqual(p.actions, []);
    assert.match(p.skipped[0]!.reason, /not destroying: no manifest files in \/m/);
  });

  it('leaves containers of a failing file and of protected keys exactly as they are', () => {
    const a = actualFrom(desired('web', {}, '/m/broken.yaml'));
    assert.deepEqual(one(undefined, a, { failingOrigins: new Set(['/m/broken.yaml']) }).actions, []);
    const changed = desired('web', { resources: { memory: '1Gi' } });
    assert.deepEqual(one(changed, a, { protectedKeys: new Set(['default/web']) }).actions, []);
  });

  it('renders JSON without the full desired objects', () => {
    const json = planToJson(one(desired('web'), undefined)) as { actions: Record<string, unknown>[] };
    assert.deepEqual(Object.keys(json.actions[0]!).sort(), ['key', 'kind', 'reason']);
  });

  describe('properties', () => {
    const quantity = {
      cpu: fc.option(fc.constantFrom('100m', '250m', '500m', '1', '2'), { nil: undefined }),
      memory: fc.option(fc.constantFrom('16Mi', '64Mi', '100M', '256Mi', '1Gi'), { nil: undefined }),
      pids: fc.option(fc.constantFrom(16, 64, 1024), { nil: undefined }),
    };
    const specArb: fc.Arbitrary<Partial<ContainerSpec>> = fc.record({
      template: fc.constantFrom('host', 'alpine'),
      command: fc.constantFrom(['/bin/sleep', '1'], ['/bin/sh', '-c', 'x']),
      state: fc.constantFrom('Running' as const, 'Stopped' as const),
      restartPolicy: fc.constantFrom('Always' as const, 'OnFailure' as const, 'Never' as const),
      resources: fc.record(quantity),
      resizePolicy: fc.constantFrom(undefined, [{ resourceName: 'memory' as const, restartPolicy: 'RestartContainer' as const }]),
      network: fc.constantFrom('none' as const, 'host' as const),
    });
    const names = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { maxLength: 6 });
    const processArb = fc.oneof(
      fc.constant({ state: 'running' as const, pid: 10 }),
      fc.constant({ state: 'absent' as const }),
      fc.record({ state: fc.constant('exited' as const), exitCode: fc.constantFrom(0, 1, 137) }),
    );
    const world = fc.record({
      desired: fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), specArb), { maxLength: 6 }),
      actual: fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), specArb, processArb), { maxLength: 6 }),
    });
    type World = { desired: [string, Partial<ContainerSpec>][]; actual: [string, Partial<ContainerSpec>, ActualContainer['process']][] };
    const build = (w: World) => {
      const d = new Map<string, DesiredContainer>(w.desired.map(([n, s]) => [`default/${n}`, desired(n, s)]));
      const a = new Map<string, ActualContainer>(w.actual.map(([n, s, p]) => [`default/${n}`, actualFrom(desired(n, s), p)]));
      return { d, a };
    };

    it('planning again after applying the plan yields nothing (convergence)', () => {
      fc.assert(
        fc.property(world, (w) => {
          const { d, a } = build(w);
          const first = plan({ desired: d, actual: a, complete: true });
          const after = simulate(first.actions, a);
          const second = plan({ desired: d, actual: after, complete: true });
          assert.deepEqual(
            second.actions.map((x) => `${x.kind} ${x.key}: ${x.reason}`),
            [],
          );
          // and the node now holds exactly the desired keys
          assert.deepEqual([...after.keys()].sort(), [...d.keys()].sort());
        }),
        { numRuns: 500 },
      );
    });

    it('only ever names desired or managed keys, one replace/create per key, and is deterministic', () => {
      fc.assert(
        fc.property(world, names, (w, unmanaged) => {
          const { d, a } = build(w);
          const p = plan({ desired: d, actual: a, complete: true });
          for (const x of p.actions) assert.ok(d.has(x.key) || a.has(x.key), `${x.key} is neither desired nor managed`);
          for (const n of unmanaged) if (!d.has(`default/${n}`) && !a.has(`default/${n}`)) assert.ok(!p.actions.some((x) => x.key === `default/${n}`));
          for (const key of new Set(p.actions.map((x) => x.key))) {
            const kinds = p.actions.filter((x) => x.key === key).map((x) => x.kind);
            assert.ok(kinds.filter((k) => k === 'create' || k === 'replace' || k === 'destroy').length <= 1);
          }
          assert.deepEqual(plan({ desired: d, actual: a, complete: true }), p);
        }),
        { numRuns: 300 },
      );
    });

    it('never destroys anything when incomplete, protected or from a failing file', () => {
      fc.assert(
        fc.property(world, (w) => {
          const { d, a } = build(w);
          const incomplete = plan({ desired: d, actual: a, complete: false });
          assert.ok(!incomplete.actions.some((x) => x.kind === 'destroy'));
          const failing = plan({ desired: new Map(), actual: a, complete: true, failingOrigins: new Set(['/m/a.yaml']) });
          assert.deepEqual(failing.actions, []);
          const prot = plan({ desired: d, actual: a, complete: true, protectedKeys: new Set(a.keys()) });
          assert.ok(prot.actions.every((x) => !a.has(x.key)));
        }),
        { numRuns: 300 },
      );
    });
  });
});
