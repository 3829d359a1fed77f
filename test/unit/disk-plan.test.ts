/** resources.disk in validation, normalization and the plan (pure). */
import assert from 'node:assert/strict';
import { validateManifest } from '../../src/api/validate.js';
import { parseDisk } from '../../src/api/quantity.js';
import { hashOf } from '../../src/api/hash.js';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import { fitsIn, xfsOverheadBytes } from '../../src/runtime/disk/xfs-fit.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import type { DesiredContainer } from '../../src/api/types.js';
import { actualFrom, desired } from '../support/model.js';

const MI = 2 ** 20;

function one(d: DesiredContainer, a: ActualContainer) {
  return plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, a]]), complete: true });
}

function withDisk(a: ActualContainer, usedMi: number): ActualContainer {
  const size = a.limits.diskBytes!;
  return { ...a, disk: { sizeBytes: size, totalBytes: size - 5 * MI, usedBytes: usedMi * MI } };
}

function manifest(disk: unknown): unknown {
  return { apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name: 'web' }, spec: { template: 'host', command: ['sh'], resources: { disk } } };
}

describe('resources.disk (pure)', () => {
  it('validates: a quantity of at least 16Mi, with a clear message per field', () => {
    assert.equal(validateManifest(manifest('2Gi')).ok, true);
    const small = validateManifest(manifest('8Mi'));
    assert.equal(small.ok, false);
    assert.deepEqual(!small.ok && small.issues.map((i) => [i.field, i.message]), [
      ['spec.resources.disk', "'8Mi' is below the smallest disk a container can run with (16Mi, the smallest XFS filesystem)"],
    ]);
    const word = validateManifest(manifest('lots'));
    assert.deepEqual(!word.ok && word.issues.map((i) => [i.field, i.message]), [['spec.resources.disk', "'lots' is not a quantity such as 2Gi"]]);
    const policy = validateManifest({
      ...(manifest('1Gi') as object),
      spec: { template: 'host', command: ['sh'], resizePolicy: [{ resourceName: 'disk', restartPolicy: 'RestartContainer' }] },
    });
    assert.equal(policy.ok, true);
  });

  it('rounds a disk up to whole 4 KiB blocks; a spec without one hashes as before', () => {
    assert.equal(parseDisk('100M'), 100_003_840);
    assert.equal(parseDisk('64Mi'), 64 * MI);
    const d = desired('web');
    assert.equal(d.spec.resources.diskBytes, undefined);
    assert.equal('disk' in d.spec.resizePolicy, false, 'no disk key in resizePolicy unless set');
    assert.equal(hashOf(d.spec), hashOf(desired('web').spec));
  });

  it('grows in place; a shrink is Deferred when the data fits, Infeasible when not; RestartContainer restarts', () => {
    const had = actualFrom(desired('web', { resources: { disk: '64Mi' } }));
    const grow = one(desired('web', { resources: { disk: '128Mi' } }), withDisk(had, 10));
    assert.equal(grow.actions[0]!.kind, 'resize');
    assert.equal(grow.actions[0]!.reason, 'disk 64Mi → 128Mi (in place)');
    const big = actualFrom(desired('web', { resources: { disk: '128Mi' } }));
    const deferred = one(desired('web', { resources: { disk: '64Mi' } }), withDisk(big, 10));
    assert.match(
      renderPlan(deferred),
      /resize +default\/web +disk 128Mi → 64Mi \(in place; disk: Deferred to the next restart \(XFS cannot shrink while mounted; the private area, 10Mi of files in use, is copied into a new image then\)\)/,
    );
    const infeasible = one(desired('web', { resources: { disk: '64Mi' } }), withDisk(big, 70));
    assert.match(infeasible.actions[0]!.reason, /disk: Infeasible: 70Mi of files in use does not fit in 64Mi; the disk stays 128Mi/);
    const restart = one(
      desired('web', { resources: { disk: '64Mi' }, resizePolicy: [{ resourceName: 'disk', restartPolicy: 'RestartContainer' }] }),
      withDisk(big, 10),
    );
    assert.equal(restart.actions[0]!.kind, 'restart');
    // An infeasible shrink is not restarted for, whatever the policy (a restart cannot make it; it would restart for ever).
    const restartPolicy = [{ resourceName: 'disk' as const, restartPolicy: 'RestartContainer' as const }];
    const noRestart = one(desired('web', { resources: { disk: '64Mi' }, resizePolicy: restartPolicy }), withDisk(big, 70));
    assert.equal(noRestart.actions[0]!.kind, 'resize');
    assert.match(noRestart.actions[0]!.reason, /disk: Infeasible: 70Mi of files in use does not fit in 64Mi; the disk stays 128Mi/);
    const withMemory = one(
      desired('web', {
        resources: { disk: '64Mi', memory: '96Mi' },
        resizePolicy: [...restartPolicy, { resourceName: 'memory', restartPolicy: 'RestartContainer' } as const],
      }),
      withDisk(big, 70),
    );
    assert.equal(withMemory.actions[0]!.kind, 'restart', 'another resource asking for a restart still gets it');
    const removed = one(desired('web'), withDisk(big, 10));
    assert.match(removed.actions[0]!.reason, /disk: Deferred to the next restart \(the private area moves out of its own filesystem\)/);
  });

  it("fitsIn counts the files, not the metadata of the current filesystem, against an estimate of the new one's overhead", () => {
    // Grown 16Mi → 40Gi: 440 MiB used by XFS itself, 100 MiB of files.
    const u = { sizeBytes: 40 * 1024 * MI, totalBytes: 40954 * MI, usedBytes: 541 * MI, filesBytes: 100 * MI };
    assert.equal(fitsIn(u, 256 * MI), true);
    assert.equal(fitsIn(u, 110 * MI), false, 'the new filesystem keeps some for itself');
    // A disk made before acetate recorded its metadata: everything used counts.
    const { filesBytes: _f, ...legacy } = u;
    assert.equal(fitsIn(legacy, 256 * MI), false);
    // Above every measured fresh overhead (xfsprogs 6.1): 16Mi 5.3 MiB, 64Mi 9.2, 256Mi 20.1, 1Gi 103, 10Gi 167.
    for (const [size, measured] of [
      [16, 5.3],
      [64, 9.2],
      [256, 20.1],
      [1024, 103],
      [10240, 167],
    ] as const) {
      const est = xfsOverheadBytes(size * MI) / MI;
      assert.ok(est >= measured && est < measured * 1.6 + 3, `${size}Mi: estimate ${est} vs measured ${measured}`);
    }
  });
});
