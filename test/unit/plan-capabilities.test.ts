/** What `plan` says when a container's capabilities loosen or change (pure). */
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import type { DesiredContainer } from '../../src/api/types.js';
import { actualFrom, desired } from '../support/model.js';

function one(d: DesiredContainer, a?: ActualContainer) {
  return plan({ desired: new Map([[d.key, d]]), actual: new Map(a ? [[d.key, a]] : []), complete: true });
}

describe('plan: capabilities', () => {
  it('a create names the capabilities beyond the default set (NET_RAW is not in it); the default set says nothing', () => {
    const loose = one(desired('web', { securityContext: { capabilities: { add: ['NET_RAW', 'sys_ptrace'] } } }));
    assert.match(loose.actions[0]!.reason, /capabilities beyond the default set: NET_RAW, SYS_PTRACE/);
    assert.match(renderPlan(loose), /create\s+default\/web.*capabilities beyond the default set: NET_RAW, SYS_PTRACE/);
    assert.doesNotMatch(one(desired('web')).actions[0]!.reason, /capabilit|privileged/);
    // Dropping more than the default, or adding one already in it, loosens nothing.
    assert.doesNotMatch(one(desired('web', { securityContext: { capabilities: { add: ['CHOWN'], drop: ['KILL'] } } })).actions[0]!.reason, /capabilit/);
    assert.match(one(desired('web', { securityContext: { privileged: true } })).actions[0]!.reason, /privileged: every capability/);
  });

  it('adding or dropping a capability of a running container is a replace that says what it gives and takes', () => {
    const before = desired('web');
    const p = one(desired('web', { securityContext: { capabilities: { add: ['NET_RAW'], drop: ['CHOWN'] } } }), actualFrom(before));
    assert.equal(p.actions.length, 1);
    const a = p.actions[0]!;
    assert.equal(a.kind, 'replace');
    assert.match(a.reason, /security changed: cannot change in place \(private area kept\); capabilities \+NET_RAW -CHOWN/);
    const back = one(before, actualFrom(desired('web', { securityContext: { capabilities: { add: ['NET_RAW'] } } })));
    assert.match(back.actions[0]!.reason, /; capabilities -NET_RAW$/);
    const priv = one(desired('web', { securityContext: { privileged: true } }), actualFrom(before));
    assert.match(priv.actions[0]!.reason, /; privileged on: every capability/);
  });
});
