/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/** Container objects → desired containers or problems (no API server needed). */
import assert from 'node:assert/strict';
import { convertObject } from '../../src/sources/kube/desired.js';
import type { KubeContainer } from '../../src/sources/kube/client.js';
import { containerObj, NODE } from './helpers.js';

function stored(o: Record<string, any>, meta: Record<string, unknown> = {}): KubeContainer {
  return {
    ...o,
    metadata: { uid: 'uid-1', generation: 3, resourceVersion: '42', creationTimestamp: '2024-01-01T00:00:00Z', ...o.metadata, ...meta },
  } as KubeContainer;
}

const ctx = { node: NODE, capacity: { cpuMillis: 4000, memoryBytes: 8 * 2 ** 30, pids: 32768 } };

describe('kube: object → desired', () => {
  it('a valid object of this node becomes a desired container keyed namespace/name, sourced from the object', () => {
    const c = convertObject(stored(containerObj('web', { namespace: 'prod' })), ctx);
    assert.equal(c.kind, 'desired');
    if (c.kind !== 'desired') return;
    assert.equal(c.key, 'prod/web');
    assert.deepEqual(c.desired.source, { kind: 'kube', uid: 'uid-1', generation: 3, resourceVersion: '42' });
    assert.equal(c.desired.spec.resources.memoryBytes, 64 * 2 ** 20);
    assert.equal(c.desired.spec.resources.cpuMillis, 500);
    assert.equal(c.desired.spec.nodeName, NODE);
  });

  it('status, managedFields and other server-side fields do not make an object invalid', () => {
    const o = stored(containerObj('web'), { managedFields: [{ manager: 'kubectl' }], finalizers: ['acetate.dev/cleanup'] });
    (o as any).status = { phase: 'Whatever', surprise: true };
    assert.equal(convertObject(o, ctx).kind, 'desired');
  });

  it('an object being deleted is terminating (not desired)', () => {
    const c = convertObject(stored(containerObj('web'), { deletionTimestamp: '2024-01-01T00:00:00Z' }), ctx);
    assert.deepEqual(c, { kind: 'terminating', key: 'default/web' });
  });

  it('an object of another node is foreign', () => {
    assert.deepEqual(convertObject(stored(containerObj('web', { node: 'node-b' })), ctx), { kind: 'foreign', key: 'default/web', nodeName: 'node-b' });
  });

  it('no spec.nodeName (seen through the node label): a problem naming the field', () => {
    const c = convertObject(stored(containerObj('web', { node: null, labels: { 'acetate.dev/node': NODE } })), ctx);
    assert.equal(c.kind, 'invalid');
    if (c.kind !== 'invalid') return;
    assert.equal(c.problem.field, 'spec.nodeName');
    assert.equal(c.problem.origin, 'kube:default/web');
    assert.deepEqual(c.problem.keys, ['default/web']);
    assert.match(c.problem.message, /required.*label acetate.dev\/node says node-a/);
    assert.equal(c.generation, 3);
  });

  it('a spec the schema rejects (an older CRD let it in): a problem with every issue', () => {
    const o = containerObj('web', { memory: '1GB' });
    o.spec.command = [];
    const c = convertObject(stored(o), ctx);
    assert.equal(c.kind, 'invalid');
    if (c.kind !== 'invalid') return;
    assert.equal(c.problem.kind, 'invalid');
    assert.match(`${c.problem.field}: ${c.problem.message}`, /spec\.(command|resources\.memory)/);
    assert.match(c.problem.message, /and spec\./, 'the other issue is listed too');
  });

  it('a quantity the node cannot satisfy: invalid, with the resources named infeasible', () => {
    const c = convertObject(stored(containerObj('big', { memory: '64Gi', cpu: 64 })), ctx);
    assert.equal(c.kind, 'invalid');
    if (c.kind !== 'invalid') return;
    assert.deepEqual(c.infeasible, ['cpu', 'memory']);
    assert.equal(c.problem.field, 'spec.resources.cpu');
    assert.match(c.problem.message, /cpu 64 is more than node node-a has \(4\).*memory 64Gi is more than node node-a has \(8Gi\).*cannot satisfy/);
    // capacity: false turns the check off
    assert.equal(convertObject(stored(containerObj('big', { memory: '64Gi', cpu: 64 })), { node: NODE, capacity: false }).kind, 'desired');
  });
});
