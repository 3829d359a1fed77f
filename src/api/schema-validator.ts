/**
 * The CRD's openAPIV3Schema compiled with ajv: precompiled by the build, compiled here when the CRD
 * changed since. The CRD stays the one source of the schema either way.
 */
import type { Ajv, ValidateFunction } from 'ajv';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { containerSchema, CRD_PATH } from './crd.js';
import { DIST_SRC } from '../util/package-root.js';

let compiled: ValidateFunction | undefined;
const require = createRequire(import.meta.url);

/**
 * The validator `npm run build` precompiles from the CRD (see validator-build.ts), in tsc's output
 * of this folder, beside the formats it requires. Named from the package root, not from this
 * module: the CLI runs this code from its bundle (dist/cli/).
 */
export const PRECOMPILED_VALIDATOR = path.join(DIST_SRC, 'api', 'container-validator.generated.cjs');
const FORMATS = path.join(DIST_SRC, 'api', 'validator-formats.cjs');

/** Identifies the CRD's content: a precompiled validator is used only for the CRD it was built from. */
export function crdFingerprint(): string {
  return createHash('sha256').update(readFileSync(CRD_PATH)).digest('hex');
}

/**
 * Unknown fields are errors, as with kubectl's default strict field validation. A CRD schema
 * may not say additionalProperties: false next to properties, so the closing happens here:
 * every object with properties becomes closed, unless it preserves unknown fields.
 */
export function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'enum' || k === 'default' ? v : closeObjects(v);
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

/** An ajv instance set up for the Container schema; `source` keeps the generated code (for the build). */
export function containerAjv(opts: { source?: boolean } = {}): Ajv {
  const { Ajv: AjvClass, _ } = require('ajv') as typeof import('ajv');
  const ajv = new AjvClass({
    allErrors: true,
    strict: false,
    verbose: true,
    formats: require(FORMATS) as Record<string, never>,
    ...(opts.source ? { code: { source: true, formats: _`require("./validator-formats.cjs")` } } : {}),
  });
  return ajv;
}

/** The schema ajv compiles: the CRD's, with objects closed. */
export function compiledSchema(): Record<string, unknown> {
  return closeObjects(containerSchema()) as Record<string, unknown>;
}

function precompiled(): ValidateFunction | undefined {
  try {
    const mod = require(PRECOMPILED_VALIDATOR) as { default: ValidateFunction; crdFingerprint: string };
    return mod.crdFingerprint === crdFingerprint() ? mod.default : undefined;
  } catch {
    return undefined; // not built (e.g. running from a fresh tsc without the build step)
  }
}

/**
 * Compiling the schema takes ~50 ms, a quarter of a short command's start-up: `npm run build`
 * precompiles it, and the precompiled validator is used as long as the CRD file is the one it was
 * built from. Otherwise (the CRD was edited since) it is compiled here, from the CRD: the CRD stays
 * the one source of validation either way.
 */
export function schemaValidator(): ValidateFunction {
  compiled ??= precompiled() ?? containerAjv().compile(compiledSchema());
  return compiled;
}
