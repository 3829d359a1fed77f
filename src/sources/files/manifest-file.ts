/**
 * One manifest file: stat, read (at most MAX_MANIFEST_BYTES), parse, validate. Bad content and I/O
 * errors become problems with file, line and field; nothing here throws for a bad file.
 */
import { createHash } from 'node:crypto';
import { statSync, type Stats } from 'node:fs';
import { validateManifest, formatPath } from '../../api/validate.js';
import { normalizeManifest } from '../../api/normalize.js';
import type { DesiredContainer } from '../../api/types.js';
import type { SourceProblem } from '../../contracts/source.js';
import { parseYamlDocuments, YamlSyntaxError } from './yaml-documents.js';
import { beyondCapacity, containerDocuments } from './documents.js';
import type { NodeCapacity } from '../kube/desired.js';
import { hostIPVerdicts, publishedHostIPs, unassignableHostIP, type NodeAddresses } from '../node-addresses.js';
import { readContained, statContained } from './contained.js';
import { excerpt, MAX_FIELD_CHARS, MAX_MESSAGE_CHARS } from './excerpt.js';
import { levelFor, type NodeSecurity } from '../../policy/node-levels.js';
import { checkSecurityLevel, violationMessage } from '../../policy/levels.js';
import type { PathSegment } from '../../api/validation-issue.js';

/** The rules of its namespace's level a valid Container breaks, each a `forbidden` problem (field path relative to the document). */
function securityProblems(
  value: unknown,
  namespace: string,
  sec: NodeSecurity,
  keys: string[],
): { path: PathSegment[]; problem: Omit<SourceProblem, 'origin'> }[] {
  const level = levelFor(sec, namespace);
  const spec = (value as { spec?: unknown }).spec;
  return checkSecurityLevel(spec, level, sec.policy).map((v) => ({
    path: v.path,
    problem: {
      kind: 'forbidden',
      keys,
      message: `${violationMessage(v, level)} (namespace ${namespace}: ${sec.origin})`,
      securityRule: { level, rule: v.rule },
    },
  }));
}

export const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface FileResult {
  file: string;
  containers: DesiredContainer[];
  problems: SourceProblem[];
  /** Documents of other APIs (e.g. a kustomization) that were skipped. */
  ignoredDocuments: number;
  /** What was skipped and why (documents of other kinds, a FIFO...): reported, not errors. */
  warnings: SourceProblem[];
  /** sha256 of the bytes parsed, when the file was read (manifest-cache.ts keeps a young file's result by it). */
  digest?: string;
  /**
   * The published ports' hostIPs checked against the node's addresses, and whether each was one:
   * the only part of the result that depends on the node's addresses, which change under a
   * running loop (manifest-cache.ts reuses the result only while every verdict holds).
   */
  hostIPs?: Record<string, boolean>;
}

/** What loadManifestFile asks of a cache (ManifestCache in manifest-cache.ts, which builds on this file). */
export interface FileResultCache {
  load(file: string, opts: LoadOptions): Promise<FileResult>;
  /** Forgets files no longer in the tree. */
  retainOnly(files: Iterable<string>): void;
}

export interface LoadOptions {
  /** Destroying everything is allowed even when the directory is missing or has no valid manifest. */
  allowEmpty?: boolean;
  /** This node's name: manifests whose spec.nodeName names another node are not desired here. */
  nodeName?: string;
  /** Reuse the result for files that did not change since they were last loaded (see ManifestCache). */
  cache?: FileResultCache;
  /** What this node can give a container: larger requests are refused, as in Kubernetes mode. */
  capacity?: NodeCapacity;
  /**
   * The manifest tree's resolved root: a file (or symlink) resolving outside it is refused without
   * being read (see contained.ts). Unset: the file is read wherever it is (`validate FILE`).
   */
  within?: string;
}

/** The digest FileResult.digest holds. */
export function digestOf(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** A problem whose field and message (built from the file's keys and values) are short, escaped excerpts. */
function problem(file: string, p: Omit<SourceProblem, 'origin'>): SourceProblem {
  const out: SourceProblem = { origin: file, ...p, message: excerpt(p.message, MAX_MESSAGE_CHARS) };
  if (p.field !== undefined) out.field = excerpt(p.field, MAX_FIELD_CHARS);
  return out;
}

/** Parses and validates one file. Never throws for bad content; I/O errors become problems too. */
export async function loadManifestFile(file: string, opts: LoadOptions = {}): Promise<FileResult> {
  if (opts.cache) return opts.cache.load(file, opts);
  const st = statManifest(file, opts.within);
  return 'problems' in st ? st : (notRegular(file, st) ?? parseManifestFile(file, st, opts));
}

/** The file's stat, or the result reporting why it cannot be read (or is refused: outside `within`). */
export function statManifest(file: string, within?: string): Stats | FileResult {
  if (within !== undefined) {
    const contained = statContained(file, within);
    return contained.ok ? contained.st : unreadable(file, contained.message);
  }
  try {
    return statSync(file);
  } catch (err) {
    return unreadable(file, `cannot read: ${(err as Error).message}`);
  }
}

function unreadable(file: string, message: string): FileResult {
  return { file, containers: [], problems: [problem(file, { kind: 'unreadable', keys: [], message })], ignoredDocuments: 0, warnings: [] };
}

/** A FIFO, socket or device is never read: reading a FIFO would wait forever for a writer. */
function notRegular(file: string, st: Stats): FileResult | undefined {
  if (st.isFile()) return undefined;
  const what = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isDirectory() ? 'a directory' : 'a device or special file';
  return {
    file,
    containers: [],
    problems: [],
    ignoredDocuments: 0,
    warnings: [problem(file, { kind: 'skipped', keys: [], message: `${what}, not a regular file: skipped` })],
  };
}

/** Reads (synchronously: a local file of at most 1 MiB, see util/small-file.ts), parses, validates. */
export function parseManifestFile(file: string, st: Stats, opts: LoadOptions): FileResult {
  const result: FileResult = { file, containers: [], problems: [], ignoredDocuments: 0, warnings: [] };
  if (st.size > MAX_MANIFEST_BYTES) {
    return unreadable(file, `file is ${st.size} bytes, larger than the ${MAX_MANIFEST_BYTES} bytes a manifest may have`);
  }
  // Read through the opened file, checked again to lie inside the tree: a link swapped since the stat reads nothing outside.
  const read = readContained(file, opts.within, MAX_MANIFEST_BYTES);
  if (!read.ok) return read.special ? (notRegular(file, read.special) ?? unreadable(file, read.message)) : unreadable(file, read.message);
  const buf = read.buf;
  result.digest = digestOf(buf);
  if (buf.includes(0)) {
    result.problems.push(problem(file, { kind: 'unreadable', keys: [], message: 'binary file (contains NUL bytes), not YAML or JSON' }));
    return result;
  }
  let docs;
  try {
    docs = parseYamlDocuments(buf.toString('utf8'), file);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      result.problems.push(problem(file, { kind: 'invalid', keys: [], line: err.line, message: `YAML syntax error: ${err.message} (column ${err.column})` }));
    } else {
      result.problems.push(problem(file, { kind: 'invalid', keys: [], message: `cannot parse: ${(err as Error).message}` }));
    }
    return result;
  }
  let nodeAddresses: NodeAddresses | undefined;
  for (const doc of docs) {
    for (const item of containerDocuments(doc, file, result)) {
      const v = item.value as Record<string, unknown>;
      const meta = v && typeof v === 'object' ? (v.metadata as Record<string, unknown> | undefined) : undefined;
      const name = typeof meta?.name === 'string' ? meta.name : undefined;
      const namespace = typeof meta?.namespace === 'string' ? meta.namespace : 'default';
      const keys = name ? [`${namespace}/${name}`] : [];
      const res = validateManifest(item.value);
      if (!res.ok) {
        for (const i of res.issues) {
          const at = [...item.at, ...i.path];
          result.problems.push(problem(file, { kind: 'invalid', keys, line: doc.lineOf(at), field: formatPath(at), message: i.message }));
        }
        continue;
      }
      const desired = normalizeManifest(res.manifest, { kind: 'file', file, line: doc.lineOf([...item.at, 'metadata', 'name']) });
      if (opts.nodeName && desired.spec.nodeName && desired.spec.nodeName !== opts.nodeName) {
        result.ignoredDocuments++;
        continue;
      }
      const over = opts.capacity ? beyondCapacity(desired, opts.capacity) : undefined;
      if (over) {
        const at = [...item.at, 'spec', 'resources', over.resource];
        result.problems.push(problem(file, { kind: 'invalid', keys, line: doc.lineOf(at), field: formatPath(at), message: over.message }));
        continue;
      }
      const ips = opts.capacity?.addresses ? publishedHostIPs(desired) : [];
      // One look at the node's addresses per file: the refusals and the verdicts recorded with
      // them (the cache's condition) must come from the same one.
      const node = ips.length ? (nodeAddresses ??= opts.capacity!.addresses!()) : undefined;
      const badIP = node ? unassignableHostIP(desired, node) : undefined;
      if (node) result.hostIPs = { ...result.hostIPs, ...hostIPVerdicts(ips, node) };
      if (badIP) {
        const at = [...item.at, 'spec', 'ports', badIP.index, 'hostIP'];
        result.problems.push(problem(file, { kind: 'invalid', keys, line: doc.lineOf(at), field: formatPath(at), message: badIP.message }));
        continue;
      }
      const refused = opts.capacity?.security ? securityProblems(item.value, desired.namespace, opts.capacity.security, keys) : [];
      if (refused.length) {
        for (const p of refused) {
          const at = [...item.at, ...p.path];
          result.problems.push(problem(file, { ...p.problem, line: doc.lineOf(at), field: formatPath(at) }));
        }
        continue;
      }
      result.containers.push(desired);
    }
  }
  return result;
}
