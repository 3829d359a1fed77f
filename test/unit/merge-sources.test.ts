import assert from 'node:assert/strict';
import { failingOrigins, mergeOrigins, mergeSnapshots, problemsForKey } from '../../src/controller/merge-sources.js';
import type { DesiredSnapshot } from '../../src/contracts/source.js';
import { desired } from '../support/model.js';

function snap(containers: ReturnType<typeof desired>[], extra: Partial<DesiredSnapshot> = {}): DesiredSnapshot {
  return { containers: new Map(containers.map((c) => [c.key, c])), protectedKeys: new Set(), problems: [], complete: true, ...extra };
}

describe('merge-sources', () => {
  it('merges origins; a key declared twice is a conflict: reported for both, protected, not desired', () => {
    const a = desired('a', {}, '/m/1.yaml');
    const b1 = desired('b', {}, '/m/1.yaml');
    const b2 = desired('b', {}, '/m/2.yaml');
    const r = mergeOrigins([
      { origin: '/m/1.yaml', containers: [a, b1], problems: [] },
      { origin: '/m/2.yaml', containers: [b2], problems: [] },
    ]);
    assert.deepEqual([...r.containers.keys()], ['default/a']);
    assert.ok(r.protectedKeys.has('default/b'));
    assert.equal(r.problems.length, 2);
    assert.ok(r.problems.every((p) => p.kind === 'conflict' && p.keys[0] === 'default/b'));
    assert.deepEqual(r.problems.map((p) => p.origin).sort(), ['/m/1.yaml', '/m/2.yaml']);
    assert.match(r.problems.find((p) => p.origin === '/m/1.yaml')!.message, /also declared in \/m\/2\.yaml:1/);
  });

  it("keeps origins' own problems and protects their keys", () => {
    const r = mergeOrigins([
      {
        origin: '/m/1.yaml',
        containers: [desired('a', {}, '/m/1.yaml')],
        problems: [{ origin: '/m/1.yaml', message: 'bad', keys: ['default/a'], kind: 'invalid' }],
      },
    ]);
    assert.equal(r.containers.size, 0);
    assert.ok(r.protectedKeys.has('default/a'));
  });

  it('merges snapshots of sources: conflicts across sources, complete only when all are', () => {
    const s1 = snap([desired('a', {}, '/m/1.yaml'), desired('x', {}, '/m/1.yaml')]);
    const s2 = snap([{ ...desired('a'), source: { kind: 'kube', uid: 'u', generation: 1 } }, desired('y')], {
      complete: false,
      protectedKeys: new Set(['default/z']),
      problems: [{ origin: 'kube:default/z', message: 'invalid', keys: ['default/z'], kind: 'invalid' }],
    });
    (s2 as DesiredSnapshot & { incompleteReason: string }).incompleteReason = 'not listed yet';
    const m = mergeSnapshots([
      { source: 'files', snapshot: s1 },
      { source: 'kube', snapshot: s2 },
    ]);
    assert.deepEqual([...m.containers.keys()].sort(), ['default/x', 'default/y']);
    assert.deepEqual([...m.protectedKeys].sort(), ['default/a', 'default/z']);
    assert.equal(m.complete, false);
    assert.equal(m.incompleteReason, 'not listed yet');
    const conflicts = m.problems.filter((p) => p.kind === 'conflict');
    assert.deepEqual(conflicts.map((p) => p.origin).sort(), ['/m/1.yaml', 'kube:default/a']);
    assert.ok(m.failingOrigins.has('kube:default/z'));
  });

  it('a single source passes through; no source is incomplete', () => {
    const s = snap([desired('a')]);
    const m = mergeSnapshots([{ source: 'files', snapshot: s }]);
    assert.equal(m.complete, true);
    assert.deepEqual([...m.containers.keys()], ['default/a']);
    assert.equal(mergeSnapshots([]).complete, false);
  });

  it('failingOrigins and problemsForKey', () => {
    const s = snap([], {
      problems: [
        { origin: '/m/1.yaml', message: 'YAML syntax error', keys: [], kind: 'invalid', line: 3 },
        { origin: '/m/2.yaml', message: 'dup', keys: ['default/b'], kind: 'conflict' },
      ],
    });
    assert.deepEqual([...failingOrigins(s)], ['/m/1.yaml']);
    assert.equal(problemsForKey(s, 'default/a', '/m/1.yaml').length, 1, 'a file-wide problem concerns the keys last applied from it');
    assert.equal(problemsForKey(s, 'default/a', '/m/3.yaml').length, 0);
    assert.equal(problemsForKey(s, 'default/b').length, 1);
  });

  it('no source at all: nothing desired and incomplete, so nothing is destroyed; each call a fresh snapshot', () => {
    const none = mergeSnapshots([]);
    assert.equal(none.complete, false);
    assert.equal(none.incompleteReason, 'no desired-state source');
    assert.equal(none.containers.size + none.protectedKeys.size + none.problems.length + none.failingOrigins.size, 0);
    none.protectedKeys.add('default/x');
    assert.equal(mergeSnapshots([]).protectedKeys.size, 0, 'a caller adding to one does not change the next');
  });
});
