/**
 * The node's default resources.disk (--default-disk / ACETATE_DEFAULT_DISK) where manifests are
 * normalized: files and Kubernetes objects that set no disk get it, one that sets its own keeps it,
 * and a bad value is refused in words.
 */
import assert from 'node:assert/strict';
import { normalizeManifest } from '../../src/api/normalize.js';
import { defaultDiskProblem, nodeDefaultDisk } from '../../src/api/node-defaults.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { convertObject } from '../../src/sources/kube/desired.js';
import type { KubeContainer } from '../../src/sources/kube/client.js';
import { containerObj, NODE } from '../kube/helpers.js';

const MI = 2 ** 20;

function m(disk?: string): ContainerManifest {
  return {
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'web' },
    spec: { template: 'host', command: ['sh'], ...(disk ? { resources: { disk } } : {}) },
  } as ContainerManifest;
}

describe('node default disk (ACETATE_DEFAULT_DISK, --default-disk)', () => {
  const saved = process.env.ACETATE_DEFAULT_DISK;
  afterEach(() => {
    if (saved === undefined) delete process.env.ACETATE_DEFAULT_DISK;
    else process.env.ACETATE_DEFAULT_DISK = saved;
  });
  const src = { kind: 'file', file: '/m/web.yaml', line: 1 } as const;

  it('unset: a container without resources.disk has no disk limit', () => {
    delete process.env.ACETATE_DEFAULT_DISK;
    assert.equal(normalizeManifest(m(), src).spec.resources.diskBytes, undefined);
  });

  it('set: a manifest without a disk gets it; one with its own keeps its own', () => {
    process.env.ACETATE_DEFAULT_DISK = '1Gi';
    assert.equal(normalizeManifest(m(), src).spec.resources.diskBytes, 1024 * MI);
    assert.equal(normalizeManifest(m('64Mi'), src).spec.resources.diskBytes, 64 * MI);
  });

  it('applies to Kubernetes Container objects that omit it (same normalization)', () => {
    process.env.ACETATE_DEFAULT_DISK = '256Mi';
    const obj = { ...containerObj('web'), metadata: { ...containerObj('web').metadata, uid: 'u', generation: 1 } } as unknown as KubeContainer;
    const c = convertObject(obj, { node: NODE, capacity: false });
    assert.equal(c.kind, 'desired', JSON.stringify(c));
    if (c.kind === 'desired') assert.equal(c.desired.spec.resources.diskBytes, 256 * MI);
  });

  it('a bad value is refused in words', () => {
    assert.match(defaultDiskProblem({ ACETATE_DEFAULT_DISK: 'lots' })!, /"lots" is not a quantity such as 10Gi/);
    assert.match(defaultDiskProblem({ ACETATE_DEFAULT_DISK: '8Mi' })!, /below 16Mi, the smallest XFS filesystem/);
    assert.equal(defaultDiskProblem({ ACETATE_DEFAULT_DISK: '10Gi' }), undefined);
    assert.throws(() => nodeDefaultDisk({ ACETATE_DEFAULT_DISK: '1x' }), /not a quantity/);
  });
});
