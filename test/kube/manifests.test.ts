/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * The example manifests in manifests/ apply unchanged with `kubectl apply -f manifests/`: each
 * document is a Container the API server accepts (schema with unknown fields rejected, as
 * kubectl's default strict validation does, plus the CRD's CEL rules), and acetate's own
 * validation agrees. Created through the real client in a fake API server that validates.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { validateManifest } from '../../src/api/validate.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { serverValidate } from './k8s-validate.js';
import { containerObj } from './helpers.js';

const DIR = path.join(PACKAGE_ROOT, 'manifests');

function documents(): { file: string; index: number; doc: Record<string, any> }[] {
  // No catch: without manifests/ there is nothing to check, and that must fail, not pass empty.
  const files = readdirSync(DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort();
  return files.flatMap((f) =>
    yaml
      .loadAll(readFileSync(path.join(DIR, f), 'utf8'))
      .filter((d) => d !== null && d !== undefined)
      .map((doc, index) => ({ file: f, index, doc: doc as Record<string, any> })),
  );
}

describe('kube: manifests/ apply unchanged', () => {
  const docs = documents();

  it('there are example manifests', () => {
    assert.ok(docs.length > 0, `no manifests/*.yaml in ${DIR}: the examples are what this suite checks`);
  });

  for (const { file, index, doc } of docs) {
    it(`${file}${index ? ` (document ${index + 1})` : ''}: ${doc?.metadata?.name ?? '?'} is a Container the API server accepts`, async () => {
      assert.equal(doc.apiVersion, 'acetate.dev/v1alpha1');
      assert.equal(doc.kind, 'Container');
      assert.deepEqual(serverValidate(doc), []);
      const own = validateManifest(doc);
      assert.ok(own.ok, JSON.stringify(!own.ok && own.issues));
      const fake = await FakeApiServer.start({ validate: serverValidate });
      try {
        const ns = doc.metadata.namespace ?? 'default';
        const res = await fetch(`${fake.url}/apis/acetate.dev/v1alpha1/namespaces/${ns}/containers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(doc),
        });
        assert.equal(res.status, 201, await res.text());
      } finally {
        await fake.close();
      }
    });
  }

  it('the validation used here rejects what the API server rejects (control)', () => {
    const typo = containerObj('x');
    typo.spec.resources.memroy = '1Gi';
    assert.match(serverValidate(typo).join('\n'), /must NOT have additional properties \(memroy\)/);
    assert.match(serverValidate(containerObj('x', { memory: '512' })).join('\n'), /memory must be at least 4Mi/);
    assert.match(serverValidate(containerObj('x', { cpu: '0' })).join('\n'), /cpu must be at least 10m/);
    assert.deepEqual(serverValidate({ ...containerObj('x'), status: { anything: 1 } }), [], 'status keeps unknown fields');
  });
});
