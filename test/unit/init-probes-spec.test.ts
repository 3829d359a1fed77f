/**
 * spec.init and probes in the pure parts: normalization (Kubernetes' probe defaults, init absent
 * when on), the plan (turning the init off or on is a replace and says so; a probe change is
 * recorded without touching the process), the OCI config (the init as PID 1, read-only) and the
 * way back to the CRD's shape for `acetate get -o yaml`.
 */
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import { actualFrom, desired } from '../support/model.js';
import { buildOciConfig } from '../../src/runtime/runc/oci-config.js';
import { INIT_IN_CONTAINER } from '../../src/runtime/runc/init.js';
import { specToManifest } from '../../src/api/to-manifest.js';
import { normalizeSpec } from '../../src/api/normalize.js';
import { testSpec } from '../support/test-spec.js';
import type { ContainerManifest } from '../../src/api/types.js';

const one = (d: ReturnType<typeof desired>, a: ReturnType<typeof actualFrom>) =>
  plan({ desired: new Map([[d.key, d]]), actual: new Map([[a.key, a]]), complete: true });

const ociInput = (spec = testSpec()) => ({
  namespace: 'default',
  name: 'a',
  spec,
  specHash: 'h',
  rootfsPath: '/r',
  cgroupsPath: '/acetate/a',
  hostNofileHard: 1024,
  swapAccounting: false,
  initPath: '/usr/bin/catatonit',
});

describe('spec.init and probes (pure parts)', () => {
  it('normalizes: init absent when on (old records compare equal), probes with Kubernetes defaults', () => {
    const m = (spec: Record<string, unknown>) =>
      ({
        apiVersion: 'acetate.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'a' },
        spec: { template: 'host', command: ['x'], ...spec },
      }) as ContainerManifest;
    assert.equal('init' in normalizeSpec(m({})), false);
    assert.equal('init' in normalizeSpec(m({ init: true })), false);
    assert.equal(normalizeSpec(m({ init: false })).init, false);
    assert.equal('probes' in normalizeSpec(m({})), false);
    assert.deepEqual(normalizeSpec(m({ livenessProbe: { httpGet: { port: 80 } } })).probes, {
      liveness: {
        handler: { kind: 'httpGet', path: '/', port: 80, scheme: 'HTTP', headers: [] },
        initialDelaySeconds: 0,
        periodSeconds: 10,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 3,
      },
    });
  });

  it('turning the init off (or on) is a replace, shown in the plan', () => {
    const off = one(desired('web', { init: false }), actualFrom(desired('web')));
    assert.equal(off.actions[0]?.kind, 'replace');
    assert.deepEqual((off.actions[0] as { fields: string[] }).fields, ['init']);
    assert.match(renderPlan(off), /-\/\+ replace\s+default\/web.*init changed/s);
    const on = one(desired('web', { init: true }), actualFrom(desired('web', { init: false })));
    assert.equal(on.actions[0]?.kind, 'replace');
    assert.deepEqual(one(desired('web', { init: true }), actualFrom(desired('web'))).actions, [], 'true is the default');
  });

  it('a probe change is recorded only (configure): the process keeps running', () => {
    const p = one(desired('web', { readinessProbe: { tcpSocket: { port: 80 } } }), actualFrom(desired('web')));
    assert.equal(p.actions.length, 1);
    assert.equal(p.actions[0]!.kind, 'configure');
    assert.deepEqual((p.actions[0] as { fields: string[] }).fields, ['probes']);
  });

  it('the OCI config runs the init as PID 1, bind-mounted read-only; not with init false', () => {
    const c = buildOciConfig(ociInput(testSpec({ command: ['sleep'], args: ['1'] })));
    assert.deepEqual(c.process.args, [INIT_IN_CONTAINER, '--', 'sleep', '1']);
    const m = c.mounts.find((x) => x.destination === INIT_IN_CONTAINER);
    assert.equal(m?.source, '/usr/bin/catatonit');
    assert.ok(m?.options?.includes('ro'));
    const bare = buildOciConfig(ociInput(testSpec({ command: ['sleep'], args: ['1'], init: false })));
    assert.deepEqual(bare.process.args, ['sleep', '1']);
    assert.equal(
      bare.mounts.some((x) => x.destination === INIT_IN_CONTAINER),
      false,
    );
  });

  it('specToManifest gives back what normalizeSpec read (the CRD shape)', () => {
    const spec = {
      template: 'host',
      command: ['sh'],
      args: ['-c', 'x'],
      init: false,
      resources: { cpu: '500m', memory: '64Mi', pids: 10 },
      readinessProbe: { exec: { command: ['true'] }, initialDelaySeconds: 1, periodSeconds: 2, timeoutSeconds: 3, successThreshold: 4, failureThreshold: 5 },
    };
    const norm = normalizeSpec({ apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name: 'a' }, spec } as ContainerManifest);
    const back = specToManifest(norm);
    assert.equal(back.init, false);
    assert.deepEqual(back.readinessProbe, spec.readinessProbe);
    assert.deepEqual(back.resources, spec.resources);
    // An applied spec's absent hostUsers is the node's ids: the manifest says hostUsers: true explicitly.
    assert.equal(back.securityContext?.hostUsers, true);
    assert.deepEqual(normalizeSpec({ apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name: 'a' }, spec: back } as ContainerManifest), {
      ...norm,
      security: { ...norm.security, hostUsers: true },
    });
  });
});
