/**
 * The validator precompiled by `npm run build` must be the CRD's: built from this very CRD file,
 * and giving the same verdicts and errors as the schema compiled at run time.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import fc from 'fast-check';
import yaml from 'js-yaml';
import type { ValidateFunction } from 'ajv';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { compiledSchema, containerAjv, crdFingerprint, PRECOMPILED_VALIDATOR } from '../../src/api/schema-validator.js';

const require = createRequire(import.meta.url);
const GENERATED = PRECOMPILED_VALIDATOR;

function examples(): unknown[] {
  const dir = path.join(PACKAGE_ROOT, 'manifests');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.ya?ml$/.test(f) && !f.includes('kustomization'));
  return files.flatMap((f) => yaml.loadAll(readFileSync(path.join(dir, f), 'utf8'))).filter((d) => d && typeof d === 'object');
}

describe('precompiled validator', () => {
  it('exists after the build and was built from this CRD', () => {
    assert.ok(existsSync(GENERATED), `${GENERATED} is missing: run npm run build`);
    const mod = require(GENERATED) as { crdFingerprint: string };
    assert.equal(mod.crdFingerprint, crdFingerprint(), 'the CRD changed since the build');
  });

  it('gives the same verdicts and errors as the runtime-compiled schema, on examples and random edits of them', () => {
    const pre = require(GENERATED) as ValidateFunction;
    const runtime = containerAjv().compile(compiledSchema());
    const base = examples();
    assert.ok(base.length >= 3, 'the example manifests are found');
    const verdict = (fn: ValidateFunction, obj: unknown) => ({
      ok: fn(obj),
      errors: (fn.errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${e.message}`),
    });
    for (const m of base) assert.deepEqual(verdict(pre, m), verdict(runtime, m));
    const field = fc.constantFrom(
      'resources',
      'command',
      'state',
      'mounts',
      'env',
      'restartPolicy',
      'securityContext',
      'terminationGracePeriodSeconds',
      'resizePolicy',
      'unknownField',
    );
    fc.assert(
      fc.property(fc.nat(base.length - 1), field, fc.jsonValue({ maxDepth: 3 }), (i, f, v) => {
        const m = structuredClone(base[i]) as { spec: Record<string, unknown> };
        m.spec[f] = v;
        assert.deepEqual(verdict(pre, m), verdict(runtime, m));
      }),
      { numRuns: 300, seed: 42 },
    );
  });
});
