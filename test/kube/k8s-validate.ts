/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * What the API server checks when a Container is created with `kubectl apply` (default
 * --validate=strict): the CRD's openAPIV3Schema with unknown fields rejected (every object with
 * properties is closed unless x-kubernetes-preserve-unknown-fields), and the
 * x-kubernetes-validations rules run where their value is present. Test support only.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { run } from '@bufbuild/cel';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

type Schema = Record<string, any>;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function crdSchema(): Schema {
  const crd = yaml.load(readFileSync(path.join(PACKAGE_ROOT, 'crds', 'containers.acetate.dev.yaml'), 'utf8')) as Schema;
  return crd.spec.versions[0].schema.openAPIV3Schema as Schema;
}

/** A copy of the schema with every object with properties closed (kubectl's strict field validation). */
export function closeObjects(s: Schema, isMetadata = false): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'x-kubernetes-validations') continue;
    if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v as Schema).map(([n, p]) => [n, closeObjects(p as Schema, n === 'metadata')]));
    else if (k === 'items') out.items = closeObjects(v as Schema);
    else if (k === 'anyOf' || k === 'allOf' || k === 'oneOf') out[k] = (v as Schema[]).map((x) => closeObjects(x));
    else out[k] = v;
  }
  if (s.properties && !s['x-kubernetes-preserve-unknown-fields'] && !isMetadata) out.additionalProperties = false;
  return out;
}

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    compiled = ajv.compile(closeObjects(crdSchema()));
  }
  return compiled;
}

function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  return v;
}

function celErrors(schema: Schema, value: unknown, at: string, out: string[]): void {
  if (value === undefined) return;
  for (const r of schema['x-kubernetes-validations'] ?? []) {
    let ok: unknown;
    try {
      ok = run(r.rule, { self: celValue(value) as never });
    } catch (err) {
      out.push(`${at}: rule ${r.rule} failed to run: ${(err as Error).message}`);
      continue;
    }
    if (ok !== true) out.push(`${at}: Invalid value: ${JSON.stringify(value)}: ${r.message ?? `failed rule: ${r.rule}`}`);
  }
  if (schema.properties && value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, p] of Object.entries(schema.properties as Schema)) celErrors(p as Schema, (value as Schema)[k], `${at}.${k}`, out);
  }
  if (schema.items && Array.isArray(value)) value.forEach((v, i) => celErrors(schema.items, v, `${at}[${i}]`, out));
}

/** The API server's verdict on a Container object: [] when it would be accepted. */
export function serverValidate(obj: unknown): string[] {
  const v = validator();
  const errs: string[] = [];
  if (!v(obj))
    for (const e of v.errors ?? [])
      errs.push(
        `${e.instancePath || '(root)'}: ${e.message}${e.keyword === 'additionalProperties' ? ` (${String((e.params as Schema).additionalProperty)})` : ''}`,
      );
  celErrors(crdSchema(), obj, '', errs);
  return errs;
}
