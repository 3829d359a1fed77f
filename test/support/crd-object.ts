/** What `acetate get -o json|yaml` prints must be a Container the CRD accepts, status included. */
import assert from 'node:assert/strict';
import { compiledSchema, containerAjv } from '../../src/api/schema-validator.js';
import { validateManifest } from '../../src/api/validate.js';

export function assertValidContainerObject(obj: unknown): void {
  const v = validateManifest(obj);
  assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
  // The schema with status closed too (the CRD's status preserves unknown fields; ours has none).
  const strict = compiledSchema() as { properties: { status: Record<string, unknown> } };
  delete strict.properties.status['x-kubernetes-preserve-unknown-fields'];
  strict.properties.status.additionalProperties = false;
  const check = containerAjv().compile(strict);
  assert.ok(check(obj), JSON.stringify(check.errors));
}
