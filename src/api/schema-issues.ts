/** ajv's errors against the Container schema, turned into one plain-words issue per field. */
import type { ErrorObject } from 'ajv';
import { issue, show, typeName, type PathSegment, type ValidationIssue } from './validation-issue.js';

function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  if (!pointer) return [];
  const out: PathSegment[] = [];
  let node: unknown = data;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(seg)) {
      out.push(Number(seg));
      node = node[Number(seg)];
    } else {
      out.push(seg);
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

function valueAt(data: unknown, path: PathSegment[]): unknown {
  let node = data;
  for (const seg of path) node = node && typeof node === 'object' ? (node as Record<string | number, unknown>)[seg] : undefined;
  return node;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** Plain words for a pattern failure, by what the field holds. */
function patternMessage(path: PathSegment[], value: unknown): string {
  const last = String(path[path.length - 1]);
  const parent = String(path[path.length - 2] ?? '');
  if (parent === 'resources' && last === 'memory') return `${show(value)} is not a quantity such as 512Mi`;
  if (parent === 'resources' && last === 'disk') return `${show(value)} is not a quantity such as 2Gi`;
  if (parent === 'resources' && last === 'cpu') return `${show(value)} is not a CPU quantity such as 500m or 2`;
  if (['hostPath', 'containerPath', 'workingDir'].includes(last)) return `${show(value)} is not an absolute path`;
  if (last === 'image' && parent === 'spec') return `${show(value)} is not an image reference such as debian:12 or registry.example.com/app@sha256:…`;
  if (parent === 'env' || path.includes('env')) return `${show(value)} is not a valid environment variable name`;
  if (['template', 'hostname', 'nodeName'].includes(last))
    return `${show(value)} is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`;
  if (last === 'hostIP') return `${show(value)} is not an IPv4 address such as 127.0.0.1`;
  if (parent === 'ports' || path.includes('ports')) return `${show(value)} is not a port name (lowercase letters, digits and '-', at most 15 characters)`;
  if (path.includes('capabilities')) return `${show(value)} is not a capability name such as NET_ADMIN`;
  return `${show(value)} has an invalid format`;
}

function describeAjvError(e: ErrorObject, data: unknown): ValidationIssue {
  const path = pointerToPath(e.instancePath, data);
  const value = valueAt(data, path);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return issue([...path, String(p.missingProperty)], 'required field is missing');
    case 'additionalProperties': {
      const extra = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: Record<string, unknown> })?.properties ?? {});
      const guess = closest(extra, known);
      return issue([...path, extra], `unknown field${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    case 'enum':
      return issue(path, `${show(value)} is not one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'type':
      return issue(
        path,
        `must be ${String(p.type)
          .replace('integer', 'a whole number')
          .replace(/^(array)$/, 'a list')
          .replace(/^(object)$/, 'a mapping')
          .replace(/^(string|boolean|number)$/, 'a $1')}, not ${typeName(value)}`,
      );
    case 'pattern':
      return issue(path, patternMessage(path, value));
    case 'minimum':
    case 'maximum':
      return issue(path, `${show(value)} must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String(p.limit)}`);
    case 'minItems':
      return issue(path, `needs at least ${String(p.limit)} item(s)`);
    case 'maxItems':
      return issue(path, `has more than ${String(p.limit)} items`);
    case 'minLength':
      return issue(path, p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters`);
    case 'maxLength':
      return issue(path, `is longer than ${String(p.limit)} characters`);
    case 'anyOf':
      return issue(path, `must be a whole number or a string, not ${typeName(value)}`);
    default:
      return issue(path, e.message ?? `fails ${e.keyword}`);
  }
}

/** Keeps one clear message per field; drops the noise of anyOf branches. */
export function schemaIssues(errors: ErrorObject[], data: unknown): ValidationIssue[] {
  const byField = new Map<string, ValidationIssue>();
  const anyOfFields = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    if (anyOfFields.has(e.instancePath) && e.schemaPath.includes('/anyOf/')) continue;
    const i = describeAjvError(e, data);
    const prev = byField.get(i.field);
    if (!prev || (prev.message.startsWith('must be a whole number') && e.keyword !== 'anyOf')) byField.set(i.field, i);
  }
  return [...byField.values()];
}
