/**
 * Validates Container objects against the CRD's openAPIV3Schema (compiled with ajv), plus the
 * few rules a CRD schema cannot express (metadata.name, path escapes). Every issue names the
 * field path and says in plain words what is wrong.
 */
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { containerSchema, CRD_PATH } from './crd.js';
import { API_VERSION, KIND, type ContainerManifest } from './types.js';
import { ALL_CAPABILITIES, capabilityName } from './capabilities.js';
import { protectedHostPathProblem } from './protected-paths.js';
import { CPU_PATTERN, MEMORY_PATTERN, MIN_DISK_BYTES, parseCpu, parseMemory, QuantityError } from './quantity.js';
import type { PathSegment } from '../sources/files/yaml-documents.js';
import { probeIssues } from './validate-probes.js';
import { portIssues } from './validate-ports.js';
import { imageSpecIssues } from '../images/validate-image.js';

export interface ValidationIssue {
  /** Field path as segments, e.g. ['spec', 'resources', 'memory']. */
  path: PathSegment[];
  /** Dotted form, e.g. spec.env[0].name. */
  field: string;
  message: string;
}

export type ValidationResult = { ok: true; manifest: ContainerManifest } | { ok: false; issues: ValidationIssue[] };

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Smallest limits runc and the kernel can actually run a container with. */
export const MIN_MEMORY_BYTES = 4 * 1024 * 1024;
export const MIN_CPU_MILLIS = 10;

let compiled: ValidateFunction | undefined;
const require = createRequire(import.meta.url);

/** The validator `npm run build` precompiles from the CRD (see validator-build.ts), next to this file. */
export const PRECOMPILED_VALIDATOR = './container-validator.generated.cjs';

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
    formats: require('./validator-formats.cjs') as Record<string, never>,
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
function validator(): ValidateFunction {
  compiled ??= precompiled() ?? containerAjv().compile(compiledSchema());
  return compiled;
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out || '(document)';
}

export function issue(path: PathSegment[], message: string): ValidationIssue {
  return { path, field: formatPath(path), message };
}

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

/** A value as shown in a message: short, and never by serializing a whole structure (alias bombs). */
function show(v: unknown): string {
  if (typeof v === 'string') return v.length > 60 ? `'${v.slice(0, 57)}...'` : `'${v}'`;
  if (v && typeof v === 'object') return typeName(v);
  return String(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
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
      return issue(path, `must be ${String(p.type).replace('integer', 'a whole number').replace(/^(array)$/, 'a list').replace(/^(object)$/, 'a mapping').replace(/^(string|boolean|number)$/, 'a $1')}, not ${typeName(value)}`);
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
function pickIssues(errors: ErrorObject[], data: unknown): ValidationIssue[] {
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

function isRecord(v: unknown): v is Record<string, unknown> & object {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/** Rules the schema cannot say. Runs on input the schema may have rejected, so it checks types first. */
function semanticIssues(m: ContainerManifest): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const meta = m.metadata as unknown;
  if (!meta || typeof meta !== 'object') return [issue(['metadata'], 'must be a mapping with a name')];
  const { name, namespace } = m.metadata;
  if (name === undefined) out.push(issue(['metadata', 'name'], 'required field is missing'));
  else if (typeof name !== 'string' || name.length > 63 || !DNS1123_LABEL.test(name))
    out.push(issue(['metadata', 'name'], `${show(name)} is not a valid name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`));
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)))
    out.push(issue(['metadata', 'namespace'], `${show(namespace)} is not a valid namespace: lowercase letters, digits and '-', at most 63 characters`));
  const spec = m.spec;
  const r = isRecord(spec.resources) ? spec.resources : undefined;
  const quantity = (field: 'cpu' | 'memory' | 'disk', parse: (q: string | number) => number, pattern: RegExp, min: number, minText: string, what: string) => {
    const q = r?.[field];
    if (q === undefined || (typeof q !== 'number' && (typeof q !== 'string' || !pattern.test(q)))) return; // the schema reports it
    try {
      if (parse(q) < min) out.push(issue(['spec', 'resources', field], `${show(q)} is below the smallest ${what} a container can run with (${minText})`));
    } catch (err) {
      if (!(err instanceof QuantityError)) throw err;
      out.push(issue(['spec', 'resources', field], err.message));
    }
  };
  quantity('memory', parseMemory, MEMORY_PATTERN, MIN_MEMORY_BYTES, '4Mi', 'memory limit');
  quantity('cpu', parseCpu, CPU_PATTERN, MIN_CPU_MILLIS, '10m', 'CPU limit');
  quantity('disk', parseMemory, MEMORY_PATTERN, MIN_DISK_BYTES, '16Mi, the smallest XFS filesystem', 'disk');
  const strings: [PathSegment[], unknown][] = [
    [['spec', 'workingDir'], spec.workingDir],
    ...(Array.isArray(spec.command) ? spec.command.map((v, i): [PathSegment[], unknown] => [['spec', 'command', i], v]) : []),
    ...(Array.isArray(spec.args) ? spec.args.map((v, i): [PathSegment[], unknown] => [['spec', 'args', i], v]) : []),
    ...(Array.isArray(spec.env) ? spec.env.map((v, i): [PathSegment[], unknown] => [['spec', 'env', i, 'value'], isRecord(v) ? v.value : undefined]) : []),
  ];
  for (const [p, v] of strings) if (typeof v === 'string' && v.includes('\0')) out.push(issue(p, 'must not contain a NUL character (a process cannot receive one)'));
  const caps = isRecord(spec.securityContext) && isRecord(spec.securityContext.capabilities) ? spec.securityContext.capabilities : {};
  for (const list of ['add', 'drop'] as const) {
    const names = (caps as Record<string, unknown>)[list];
    if (!Array.isArray(names)) continue;
    names.forEach((c, i) => {
      if (typeof c !== 'string' || !/^(CAP_)?[A-Z_]+$|^ALL$/.test(c)) return; // the schema reports it
      const name = capabilityName(c);
      if (name !== 'ALL' && !ALL_CAPABILITIES.includes(name)) {
        out.push(issue(['spec', 'securityContext', 'capabilities', list, i], `${show(c)} is not a Linux capability this node knows (e.g. NET_ADMIN, SYS_PTRACE)`));
      }
    });
  }
  out.push(...securityContextIssues(spec.securityContext, spec.template, spec.image));
  const seen = new Set<string>();
  (Array.isArray(spec.mounts) ? spec.mounts : []).forEach((mnt, i) => {
    if (!isRecord(mnt)) return;
    const own = typeof mnt.hostPath === 'string' ? protectedHostPathProblem(mnt.hostPath) : undefined;
    if (own) out.push(issue(['spec', 'mounts', i, 'hostPath'], own));
    for (const f of ['hostPath', 'containerPath'] as const) {
      if (typeof mnt[f] === 'string' && mnt[f].includes('\0')) out.push(issue(['spec', 'mounts', i, f], 'must not contain a NUL character'));
      else if (typeof mnt[f] === 'string' && mnt[f].split('/').includes('..'))
        out.push(issue(['spec', 'mounts', i, f], `${show(mnt[f])} must not contain '..'`));
    }
    if (typeof mnt.containerPath === 'string') {
      const norm = mnt.containerPath.replace(/\/+$/, '') || '/';
      if (norm === '/') out.push(issue(['spec', 'mounts', i, 'containerPath'], 'cannot mount over the container\'s root'));
      // runc refuses mounts on /proc (procfs, which it mounts itself), and a bind there would hide the container's processes.
      if (norm === '/proc' || norm.startsWith('/proc/')) out.push(issue(['spec', 'mounts', i, 'containerPath'], `${show(mnt.containerPath)} is inside /proc, the kernel's process filesystem: runc refuses mounts there`));
      if (seen.has(norm)) out.push(issue(['spec', 'mounts', i, 'containerPath'], `${show(mnt.containerPath)} is mounted twice`));
      seen.add(norm);
    }
  });
  out.push(...portIssues(spec));
  for (const i of imageSpecIssues(spec as unknown as Record<string, unknown>)) out.push(issue(i.path, i.message));
  const envNames = new Set<string>();
  (Array.isArray(spec.env) ? spec.env : []).forEach((e, i) => {
    if (!isRecord(e) || typeof e.name !== 'string') return;
    if (envNames.has(e.name)) out.push(issue(['spec', 'env', i, 'name'], `${show(e.name)} is set twice`));
    envNames.add(e.name);
  });
  for (const p of probeIssues(spec as unknown as Record<string, unknown>)) out.push(issue(p.path, p.message));
  return out;
}

/** seccompProfile and hostUsers rules the schema cannot say (see src/runtime/runc/seccomp.ts, userns.ts). */
function securityContextIssues(sc: unknown, template: unknown, image: unknown): ValidationIssue[] {
  if (!isRecord(sc)) return [];
  const out: ValidationIssue[] = [];
  const at = (...p: PathSegment[]): PathSegment[] => ['spec', 'securityContext', ...p];
  const sp = sc.seccompProfile;
  if (isRecord(sp) && typeof sp.type === 'string') {
    if (sp.type === 'Localhost' && typeof sp.localhostProfile !== 'string') out.push(issue(at('seccompProfile', 'localhostProfile'), 'required with type Localhost (an absolute path of a profile on the node)'));
    if (sp.type !== 'Localhost' && sp.localhostProfile !== undefined) out.push(issue(at('seccompProfile', 'localhostProfile'), `only goes with type Localhost, not ${show(sp.type)}`));
  }
  if (sc.hostUsers === false && sc.privileged === true) out.push(issue(at('hostUsers'), 'false cannot go with privileged: true (a privileged container uses the node\'s ids)'));
  if (sc.hostUsers === false && template === 'host') {
    out.push(issue(at('hostUsers'), "false needs an imported template: the host template's files belong to the node's root and overlayfs cannot use the node's / in a user namespace (see README, User namespaces)"));
  }
  if (sc.hostUsers === false && image !== undefined) {
    out.push(issue(at('hostUsers'), "false cannot go with image yet: an image's layers are shared by every container of the image and belong to the node's root (use an imported template)"));
  }
  return out;
}

/** Validates one parsed object as a Container. */
export function validateManifest(obj: unknown): ValidationResult {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    return { ok: false, issues: [issue([], `a Container must be a mapping, not ${typeName(obj)}`)] };
  }
  const v = validator();
  const issues: ValidationIssue[] = [];
  if (!v(obj)) issues.push(...pickIssues(v.errors ?? [], obj));
  const o = obj as Record<string, unknown>;
  if (o.apiVersion === API_VERSION && o.kind === KIND && o.spec && typeof o.spec === 'object' && !Array.isArray(o.spec)) {
    issues.push(...semanticIssues(obj as ContainerManifest).filter((s) => !issues.some((i) => i.field === s.field)));
  }
  if (issues.length) return { ok: false, issues };
  return { ok: true, manifest: obj as ContainerManifest };
}
