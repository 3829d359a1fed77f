/**
 * Probe fields given as 0 take Kubernetes' defaults (SetDefaults_Probe: periodSeconds 10,
 * timeoutSeconds 1, successThreshold 1, failureThreshold 3), as a manifest written for Kubernetes
 * expects: accepted by the CRD schema, normalized to the same spec (and hash, so nothing is
 * replaced) as one without them. Negative values are still refused with the field named.
 */
import assert from 'node:assert/strict';
import yaml from 'js-yaml';
import { validateManifest } from '../../src/api/validate.js';
import { normalizeSpec } from '../../src/api/normalize.js';
import { hashOf } from '../../src/api/hash.js';

const manifest = (probeFields: string) =>
  yaml.load(`apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: web }
spec:
  template: host
  command: [/bin/sleep, "1000"]
  livenessProbe:
    exec: { command: [/bin/true] }
${probeFields}
  readinessProbe:
    tcpSocket: { port: 80 }
${probeFields}
`);

describe('probe fields of 0 are the Kubernetes defaults', () => {
  const zeros = ['periodSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold', 'initialDelaySeconds'].map((f) => `    ${f}: 0`).join('\n');

  it('are accepted, and normalize to the same spec and hash as fields left out', () => {
    const withZeros = validateManifest(manifest(zeros));
    assert.ok(withZeros.ok, JSON.stringify(!withZeros.ok && withZeros.issues));
    const without = validateManifest(manifest(''));
    assert.ok(without.ok);
    const spec = normalizeSpec(withZeros.manifest);
    for (const kind of ['liveness', 'readiness'] as const) {
      const p = spec.probes![kind]!;
      assert.deepEqual(
        [p.initialDelaySeconds, p.periodSeconds, p.timeoutSeconds, p.successThreshold, p.failureThreshold],
        [0, 10, 1, 1, 3],
        `${kind} probe defaults`,
      );
    }
    assert.equal(hashOf(spec), hashOf(normalizeSpec(without.manifest)), 'the same spec: no replace, no probe change');
  });

  it('other values are kept; negatives and a liveness successThreshold of 2 are still refused', () => {
    const ok = validateManifest(manifest('    periodSeconds: 3\n    failureThreshold: 7'));
    assert.ok(ok.ok);
    assert.equal(normalizeSpec(ok.manifest).probes!.liveness!.periodSeconds, 3);
    assert.equal(normalizeSpec(ok.manifest).probes!.liveness!.failureThreshold, 7);
    const neg = validateManifest(manifest('    periodSeconds: -1'));
    assert.ok(!neg.ok);
    assert.ok(
      neg.issues.some((i) => i.field === 'spec.livenessProbe.periodSeconds'),
      JSON.stringify(neg.issues),
    );
    const two = validateManifest(manifest('    successThreshold: 2'));
    assert.ok(!two.ok);
    assert.ok(
      two.issues.some((i) => i.field === 'spec.livenessProbe.successThreshold' && /must be 1/.test(i.message)),
      JSON.stringify(two.issues),
    );
  });
});
