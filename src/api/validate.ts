/**
 * Validates Container objects against the CRD's openAPIV3Schema (compiled with ajv, see
 * schema-validator.ts), plus the rules a CRD schema cannot express (validate-semantics.ts). Every
 * issue names the field path and says in plain words what is wrong.
 */
import { API_VERSION, KIND, type ContainerManifest } from './types.js';
import { schemaIssues } from './schema-issues.js';
import { schemaValidator } from './schema-validator.js';
import { validateSemantics } from './validate-semantics.js';
import { issue, typeName, type ValidationIssue } from './validation-issue.js';

export { formatPath, type ValidationIssue } from './validation-issue.js';

export type ValidationResult = { ok: true; manifest: ContainerManifest } | { ok: false; issues: ValidationIssue[] };

/** Validates one parsed object as a Container. */
export function validateManifest(obj: unknown): ValidationResult {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    return { ok: false, issues: [issue([], `a Container must be a mapping, not ${typeName(obj)}`)] };
  }
  const v = schemaValidator();
  const issues: ValidationIssue[] = [];
  if (!v(obj)) issues.push(...schemaIssues(v.errors ?? [], obj));
  const o = obj as Record<string, unknown>;
  if (o.apiVersion === API_VERSION && o.kind === KIND && o.spec && typeof o.spec === 'object' && !Array.isArray(o.spec)) {
    issues.push(...validateSemantics(obj as ContainerManifest).filter((s) => !issues.some((i) => i.field === s.field)));
  }
  if (issues.length) return { ok: false, issues };
  return { ok: true, manifest: obj as ContainerManifest };
}
