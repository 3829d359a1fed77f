/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * The Container CRD as the API server would judge it, without an API server:
 * - against the official apiextensions.k8s.io/v1 OpenAPI schema (kubernetes-models);
 * - the structural-schema and CRD validation rules of apiextensions-apiserver that matter here
 *   (ported from pkg/apiserver/schema/validation.go and pkg/apis/apiextensions/validation):
 *   every node typed except int-or-string, the exact int-or-string anyOf, no additionalProperties
 *   next to properties, no unknown keywords, metadata untouched, list-map keys, defaults valid,
 *   status-subresource root restrictions;
 * - the x-kubernetes-validations rules parsed and run by a CEL implementation (@bufbuild/cel),
 *   their estimated cost under the per-rule limit, and their verdicts a subset of acetate's own
 *   validation (so the API server never rejects what acetate would run);
 * - printer columns, selectable fields, names.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { run, parse } from '@bufbuild/cel';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { validateManifest } from '../../src/api/validate.js';
import { GROUP, KIND, PLURAL, VERSION, NODE_FIELD } from '../../src/sources/kube/constants.js';

type Schema = Record<string, any>;

const CRD_FILE = path.join(PACKAGE_ROOT, 'crds', 'containers.acetate.dev.yaml');
const crd = yaml.load(readFileSync(CRD_FILE, 'utf8')) as Schema;
const version = crd.spec.versions[0] as Schema;
const root = version.schema.openAPIV3Schema as Schema;

/** Fields of apiextensions.k8s.io/v1 JSONSchemaProps. */
const PROPS_KEYS = new Set([
  '$ref',
  '$schema',
  'additionalItems',
  'additionalProperties',
  'allOf',
  'anyOf',
  'default',
  'definitions',
  'dependencies',
  'description',
  'enum',
  'example',
  'exclusiveMaximum',
  'exclusiveMinimum',
  'externalDocs',
  'format',
  'id',
  'items',
  'maxItems',
  'maxLength',
  'maxProperties',
  'maximum',
  'minItems',
  'minLength',
  'minProperties',
  'minimum',
  'multipleOf',
  'not',
  'nullable',
  'oneOf',
  'pattern',
  'patternProperties',
  'properties',
  'required',
  'title',
  'type',
  'uniqueItems',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-validations',
]);
/** Rejected by the API server for CRDs (specStandardValidatorV3). */
const FORBIDDEN = ['$ref', 'id', 'definitions', 'dependencies', 'patternProperties', 'additionalItems'];
/** Not allowed inside anyOf/allOf/oneOf/not (validateNestedValueValidation). */
const NESTED_FORBIDDEN = [
  'type',
  'description',
  'default',
  'additionalProperties',
  'title',
  'nullable',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
];
/** With the status subresource, only these may be set at the root (allowedFieldsAtRootSchema). */
const ROOT_ALLOWED = new Set([
  'description',
  'type',
  'format',
  'title',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'multipleOf',
  'required',
  'items',
  'properties',
  'externalDocs',
  'example',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-validations',
]);
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);
const FORMATS = new Set([
  'int32',
  'int64',
  'float',
  'double',
  'byte',
  'binary',
  'date',
  'date-time',
  'password',
  'uri',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'mac',
  'uuid',
  'duration',
  'quantity',
  'int-or-string',
  '',
]);

const INT_OR_STRING_ANYOF = [{ type: 'integer' }, { type: 'string' }];

interface Node {
  schema: Schema;
  path: string;
  level: 'root' | 'field' | 'item';
}

function nodes(schema: Schema, p = 'openAPIV3Schema', level: Node['level'] = 'root', out: Node[] = []): Node[] {
  out.push({ schema, path: p, level });
  for (const [k, v] of Object.entries(schema.properties ?? {})) nodes(v as Schema, `${p}.properties[${k}]`, 'field', out);
  if (schema.items && !Array.isArray(schema.items)) nodes(schema.items, `${p}.items`, 'item', out);
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    nodes(schema.additionalProperties, `${p}.additionalProperties`, 'field', out);
  return out;
}

function nested(schema: Schema): { s: Schema; where: string }[] {
  const out: { s: Schema; where: string }[] = [];
  for (const j of ['anyOf', 'allOf', 'oneOf'] as const) (schema[j] ?? []).forEach((s: Schema, i: number) => out.push({ s, where: `${j}[${i}]` }));
  if (schema.not) out.push({ s: schema.not, where: 'not' });
  return out;
}

/** Structural and CRD validation errors, in the API server's words. */
export function crdSchemaErrors(rootSchema: Schema, statusSubresource: boolean): string[] {
  const errs: string[] = [];
  if (statusSubresource)
    for (const k of Object.keys(rootSchema))
      if (!ROOT_ALLOWED.has(k)) errs.push(`openAPIV3Schema.${k}: only ${[...ROOT_ALLOWED].join(', ')} are allowed at the root with the status subresource`);
  if (rootSchema.type !== 'object') errs.push('openAPIV3Schema.type: must be object at the root');
  if (rootSchema.nullable) errs.push('openAPIV3Schema.nullable: cannot be true at the root');
  for (const { schema: s, path: p, level } of nodes(rootSchema)) {
    for (const k of Object.keys(s)) if (!PROPS_KEYS.has(k)) errs.push(`${p}.${k}: unknown field`);
    for (const k of FORBIDDEN) if (s[k] !== undefined) errs.push(`${p}.${k}: Forbidden: ${k} is not supported`);
    if (s.uniqueItems === true) errs.push(`${p}.uniqueItems: Forbidden: cannot be set to true`);
    if (Array.isArray(s.items)) errs.push(`${p}.items: must be a schema object and not an array`);
    if (s.type !== undefined && !TYPES.has(s.type)) errs.push(`${p}.type: Unsupported value: ${s.type}`);
    if (s.format !== undefined && !FORMATS.has(s.format)) errs.push(`${p}.format: unknown format ${s.format}`);
    if (s.additionalProperties !== undefined && s.properties && (s.additionalProperties === false || typeof s.additionalProperties === 'object'))
      errs.push(`${p}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`);
    if (level === 'root' && s.additionalProperties !== undefined) errs.push(`${p}.additionalProperties: must not be used at the root`);
    const ios = s['x-kubernetes-int-or-string'] === true;
    if (!s.type && !ios && !s['x-kubernetes-preserve-unknown-fields'])
      errs.push(`${p}.type: Required value: must not be empty for specified ${level === 'item' ? 'array items' : level === 'root' ? 'root' : 'object fields'}`);
    if (ios && s.type) errs.push(`${p}.type: must be empty with x-kubernetes-int-or-string`);
    if (ios && s['x-kubernetes-preserve-unknown-fields']) errs.push(`${p}: x-kubernetes-preserve-unknown-fields must be false with x-kubernetes-int-or-string`);
    const skipAnyOf = ios && JSON.stringify(s.anyOf) === JSON.stringify(INT_OR_STRING_ANYOF);
    const skipAllOf0 = ios && JSON.stringify(s.allOf?.[0]?.anyOf) === JSON.stringify(INT_OR_STRING_ANYOF);
    for (const { s: n, where } of nested(s)) {
      if (where.startsWith('anyOf') && skipAnyOf) continue;
      const check = (x: Schema, w: string): void => {
        for (const k of NESTED_FORBIDDEN) {
          if (x[k] === undefined) continue;
          errs.push(`${p}.${w}.${k}: Forbidden: must be empty to be structural`);
        }
        if (x.properties?.metadata) errs.push(`${p}.${w}.properties[metadata]: must not be specified in a nested context`);
        for (const { s: y, where: w2 } of nested(x)) {
          if (skipAllOf0 && w === 'allOf[0]' && w2.startsWith('anyOf')) continue;
          check(y, `${w}.${w2}`);
        }
      };
      check(n, where);
    }
    if (s.type === 'array' && !s.items) errs.push(`${p}.items: Required value: must be specified`);
    const lt = s['x-kubernetes-list-type'];
    if (lt !== undefined) {
      if (!['atomic', 'set', 'map'].includes(lt)) errs.push(`${p}.x-kubernetes-list-type: Unsupported value: ${lt}`);
      if (s.type !== 'array') errs.push(`${p}.type: must be array if x-kubernetes-list-type is specified`);
    }
    const keys: string[] | undefined = s['x-kubernetes-list-map-keys'];
    if (keys?.length && lt !== 'map') errs.push(`${p}.x-kubernetes-list-type: must be map if x-kubernetes-list-map-keys is non-empty`);
    if (lt === 'map') {
      if (!keys?.length) errs.push(`${p}.x-kubernetes-list-map-keys: must not be empty if x-kubernetes-list-type is map`);
      if (s.items?.type !== 'object') errs.push(`${p}.items.type: must be object if parent array's x-kubernetes-list-type is map`);
      for (const k of keys ?? []) {
        const ks = s.items?.properties?.[k];
        if (!ks) errs.push(`${p}.x-kubernetes-list-map-keys: entries must all be names of item properties (${k})`);
        else {
          if (ks.type === 'array' || ks.type === 'object') errs.push(`${p}.items.properties[${k}].type: must be a scalar type`);
          if (!(s.items.required ?? []).includes(k) && ks.default === undefined)
            errs.push(
              `${p}.items.properties[${k}].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property`,
            );
        }
      }
    }
    for (const [i, r] of (s['x-kubernetes-validations'] ?? []).entries()) {
      if (!String(r.rule ?? '').trim()) errs.push(`${p}.x-kubernetes-validations[${i}].rule: rule is not specified`);
      if (r.message !== undefined && /[\n\r]/.test(String(r.message).trim()))
        errs.push(`${p}.x-kubernetes-validations[${i}].message: must not contain line breaks`);
      if (/[\n\r]/.test(String(r.rule).trim()) && !r.message)
        errs.push(`${p}.x-kubernetes-validations[${i}].message: must be specified if rule contains line breaks`);
      for (const k of Object.keys(r))
        if (!['rule', 'message', 'messageExpression', 'reason', 'fieldPath', 'optionalOldSelf'].includes(k))
          errs.push(`${p}.x-kubernetes-validations[${i}].${k}: unknown field`);
    }
  }
  // metadata at the root: nothing but type object (and name/generateName restrictions)
  const meta = rootSchema.properties?.metadata;
  if (meta) {
    const extra = Object.keys(meta).filter((k) => k !== 'type' && k !== 'properties');
    const props = Object.keys(meta.properties ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
    if (meta.type !== 'object' || extra.length || props.length)
      errs.push('openAPIV3Schema.properties[metadata]: must not specify anything other than name and generateName');
  }
  for (const k of ['apiVersion', 'kind']) {
    const f = rootSchema.properties?.[k];
    if (f && f.type !== 'string') errs.push(`openAPIV3Schema.properties[${k}].type: must be string`);
  }
  return errs;
}

/** Every default must be valid for its own schema (structuraldefaulting.ValidateDefaults). */
function defaultErrors(rootSchema: Schema): string[] {
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat('int64', true);
  ajv.addFormat('date-time', true);
  const errs: string[] = [];
  for (const { schema: s, path: p } of nodes(rootSchema)) {
    if (s.default === undefined) continue;
    if (p.startsWith('openAPIV3Schema.properties[metadata]')) errs.push(`${p}.default: must not be set in top-level metadata`);
    const { default: d, ...rest } = s;
    if (!ajv.validate(rest, d)) errs.push(`${p}.default: ${JSON.stringify(d)} is invalid: ${ajv.errorsText()}`);
  }
  return errs;
}

interface Rule {
  path: string;
  rule: string;
  message?: string;
  schema: Schema;
}

function rules(): Rule[] {
  return nodes(root).flatMap(({ schema, path: p }) =>
    (schema['x-kubernetes-validations'] ?? []).map((r: Schema) => ({ path: p, rule: r.rule, message: r.message, schema })),
  );
}

/**
 * The API server's static cost estimate of `self.matches(re)` (cel-go checker/cost.go):
 * ceil(size(self) · 0.1) · ceil(len(re) · 0.25). For x-kubernetes-int-or-string, size(self) is
 * the whole request (3 MiB − 2, maxLength is not used); for strings, maxLength · 4.
 */
function matchesCost(r: Rule): number {
  const size = r.schema['x-kubernetes-int-or-string'] ? 3 * 1024 * 1024 - 2 : (r.schema.maxLength ?? 3 * 1024 * 1024 - 2) * 4;
  let total = 0;
  for (const m of r.rule.matchAll(/\.matches\('((?:[^'\\]|\\.)*)'\)/g)) total += Math.ceil(size * 0.1) * Math.ceil(m[1]!.length * 0.25);
  return total;
}
const PER_RULE_COST_LIMIT = 10_000_000;

/** Runs the rule with self bound as the API server would (integers as CEL int). */
function celOk(rule: string, self: unknown): boolean {
  const v = typeof self === 'number' && Number.isInteger(self) ? BigInt(self) : self;
  const out = run(rule, { self: v as never });
  if (typeof out !== 'boolean') throw new Error(`rule ${rule} returned ${String(out)}`);
  return out;
}

function acetateAccepts(resources: Record<string, unknown>): boolean {
  const r = validateManifest({
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'x' },
    spec: { template: 'host', command: ['/bin/true'], resources },
  });
  return r.ok;
}

describe('kube: CRD', () => {
  it('is valid against the official apiextensions.k8s.io/v1 schema', () => {
    new CustomResourceDefinition(crd as never).validate();
    assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
    assert.equal(crd.kind, 'CustomResourceDefinition');
  });

  it('the structural-schema checks catch what the API server rejects (self-test of the checker)', () => {
    const bad: Schema = {
      type: 'object',
      properties: {
        metadata: { type: 'object', properties: { labels: { type: 'object' } } },
        spec: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string' }] },
            untyped: { description: 'no type' },
            list: {
              type: 'array',
              'x-kubernetes-list-type': 'map',
              'x-kubernetes-list-map-keys': ['k'],
              items: { type: 'object', properties: { k: { type: 'string' } } },
            },
            typo: { type: 'string', maxLenght: 3 },
          },
        },
      },
    };
    const errs = crdSchemaErrors(bad, true);
    for (const want of [
      /spec\].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive/,
      /properties\[q\]\.anyOf\[0\]\.type: Forbidden: must be empty to be structural/,
      /properties\[untyped\]\.type: Required value/,
      /properties\[k\]\.default: Required value/,
      /maxLenght: unknown field/,
      /properties\[metadata\]: must not specify anything other than name and generateName/,
    ]) {
      assert.ok(
        errs.some((e) => want.test(e)),
        `expected ${want} in:\n${errs.join('\n')}`,
      );
    }
  });

  it('is a structural schema the API server accepts', () => {
    assert.deepEqual(crdSchemaErrors(root, !!version.subresources?.status), []);
  });

  it('has valid defaults', () => {
    assert.deepEqual(defaultErrors(root), []);
  });

  it('has no unknown keys in the CRD object itself', () => {
    const allowed: Record<string, string[]> = {
      '': ['apiVersion', 'kind', 'metadata', 'spec'],
      spec: ['group', 'names', 'scope', 'versions', 'conversion', 'preserveUnknownFields'],
      'spec.names': ['kind', 'listKind', 'plural', 'singular', 'shortNames', 'categories'],
      version: ['name', 'served', 'storage', 'schema', 'subresources', 'additionalPrinterColumns', 'selectableFields', 'deprecated', 'deprecationWarning'],
      column: ['name', 'type', 'jsonPath', 'description', 'format', 'priority'],
      subresources: ['status', 'scale'],
    };
    const unknown = (obj: Schema, kind: string) => Object.keys(obj).filter((k) => !allowed[kind]!.includes(k));
    assert.deepEqual(unknown(crd, ''), []);
    assert.deepEqual(unknown(crd.spec, 'spec'), []);
    assert.deepEqual(unknown(crd.spec.names, 'spec.names'), []);
    for (const v of crd.spec.versions) {
      assert.deepEqual(unknown(v, 'version'), []);
      assert.deepEqual(unknown(v.subresources ?? {}, 'subresources'), []);
      for (const c of v.additionalPrinterColumns ?? []) assert.deepEqual(unknown(c, 'column'), []);
    }
  });

  it('names, group and version match what acetate talks to; status subresource on; one served storage version', () => {
    assert.equal(crd.metadata.name, `${PLURAL}.${GROUP}`);
    assert.equal(crd.spec.group, GROUP);
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.equal(crd.spec.names.kind, KIND);
    assert.equal(crd.spec.names.plural, PLURAL);
    assert.ok(crd.spec.names.shortNames.length > 0);
    assert.equal(version.name, VERSION);
    assert.equal(crd.spec.versions.filter((v: Schema) => v.storage).length, 1);
    assert.deepEqual(version.subresources.status, {});
  });

  it('selectableFields offers spec.nodeName (a string field) for the server-side node filter', () => {
    const fields = version.selectableFields as { jsonPath: string }[];
    assert.ok(fields.length <= 8);
    assert.ok(fields.some((f) => f.jsonPath === `.${NODE_FIELD}`));
    assert.equal(root.properties.spec.properties.nodeName.type, 'string');
  });

  it('printer columns: node, state, cpu, memory, ready, ip, image, age; each path exists in the schema', () => {
    const cols = version.additionalPrinterColumns as Schema[];
    assert.deepEqual(
      cols.map((c) => c.name.toLowerCase()),
      ['node', 'state', 'cpu', 'memory', 'ready', 'ip', 'image', 'age'],
    );
    for (const c of cols) {
      assert.ok(['integer', 'number', 'string', 'boolean', 'date'].includes(c.type), `${c.name}: type ${c.type}`);
      if (c.jsonPath === '.metadata.creationTimestamp') continue;
      let s: Schema | undefined = root;
      for (const seg of c.jsonPath
        .replace(/\[\?\(@\.type=="[A-Za-z]+"\)\]/g, '[]')
        .split('.')
        .slice(1)) {
        const [name, arr] = [seg.replace('[]', ''), seg.endsWith('[]')];
        s = s?.properties?.[name];
        if (arr) s = s?.items;
      }
      assert.ok(s, `${c.name}: ${c.jsonPath} is not in the schema`);
    }
  });

  it('x-kubernetes-validations rules parse as CEL and stay under the per-rule cost limit', () => {
    const rs = rules();
    assert.ok(rs.length >= 2, 'quantity rules present');
    for (const r of rs) {
      assert.doesNotThrow(() => parse(r.rule), `${r.path}: ${r.rule}`);
      assert.ok(r.message && !/\n/.test(r.message), `${r.path}: a one-line message`);
      const cost = matchesCost(r);
      assert.ok(cost < PER_RULE_COST_LIMIT, `${r.path}: estimated cost ${cost} ≥ ${PER_RULE_COST_LIMIT}`);
    }
  });

  it('the quantity rules catch bad quantities early', () => {
    const rule = (field: string) => rules().find((r) => r.path.endsWith(`properties[${field}]`))!.rule;
    const cpu = rule('cpu');
    for (const ok of ['10m', '500m', '0.01', '0.5', '2', '.5', '9.5m', 1, 64]) assert.equal(celOk(cpu, ok), true, `cpu ${ok}`);
    for (const bad of ['0', '0m', '5m', '8.9m', '0.0', '0.005', '.001', '000', 0]) assert.equal(celOk(cpu, bad), false, `cpu ${bad}`);
    const mem = rule('memory');
    for (const ok of ['4Mi', '64Mi', '1Gi', '0.5Gi', '5000000', '5M', '4096Ki', 4194304, 2 ** 30]) assert.equal(celOk(mem, ok), true, `memory ${ok}`);
    for (const bad of ['512', '0', '0Gi', '0.0Mi', '100Ki', '999k', '3Mi', '3M', '1048576', '0e3', 100, 0])
      assert.equal(celOk(mem, bad), false, `memory ${bad}`);
  });

  it('never rejects a quantity acetate accepts (the rules are a subset of acetate validation)', () => {
    const cpuRule = rules().find((r) => r.path.endsWith('properties[cpu]'))!.rule;
    const memRule = rules().find((r) => r.path.endsWith('properties[memory]'))!.rule;
    const num = fc
      .tuple(fc.stringMatching(/^[0-9]{0,8}$/), fc.option(fc.stringMatching(/^[0-9]{0,4}$/)))
      .map(([i, f]) => `${i}${f === null ? '' : `.${f}`}`)
      .filter((s) => /[0-9]/.test(s));
    const cpu = fc.oneof(
      fc.tuple(num, fc.constantFrom('', 'm')).map(([n, u]) => `${n}${u}`),
      fc.nat({ max: 2000 }),
    );
    const mem = fc.oneof(
      fc.tuple(num, fc.constantFrom('', 'k', 'K', 'Ki', 'M', 'Mi', 'G', 'Gi', 'T', 'Ti', 'E', 'e3', 'e6')).map(([n, u]) => `${n}${u}`),
      fc.nat({ max: 2 ** 31 }),
    );
    fc.assert(
      fc.property(cpu, (q) => !(celOk(cpuRule, q) === false && acetateAccepts({ cpu: q }))),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(mem, (q) => !(celOk(memRule, q) === false && acetateAccepts({ memory: q }))),
      { numRuns: 2000 },
    );
  });
});
