/**
 * Reads a directory tree of Container manifests into a DesiredSnapshot. A file that cannot be
 * used is reported with file, line and field, and never makes its containers disappear: its
 * path is listed in failingOrigins so plan leaves their containers as last applied.
 */
import { promises as fs, readFileSync, statSync, type Stats } from 'node:fs';
import { sameStamp, settled, stampOf, type FileStamp } from '../../util/stat-cache.js';
import path from 'node:path';
import { validateManifest, formatPath } from '../../api/validate.js';
import { normalizeManifest } from '../../api/normalize.js';
import type { DesiredContainer } from '../../api/types.js';
import type { DesiredSnapshot, SourceProblem } from '../../contracts/source.js';
import { parseYamlDocuments, YamlSyntaxError } from './yaml-documents.js';
import { beyondCapacity, containerDocuments } from './documents.js';
import type { NodeCapacity } from '../kube/desired.js';
import { isIgnoredName, isManifestPath } from './ignore.js';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_DEPTH = 32;

export interface FileResult {
  file: string;
  containers: DesiredContainer[];
  problems: SourceProblem[];
  /** Documents of other APIs (e.g. a kustomization) that were skipped. */
  ignoredDocuments: number;
  /** What was skipped and why (documents of other kinds, a FIFO...): reported, not errors. */
  warnings: SourceProblem[];
}

export interface LoadOptions {
  /** Destroying everything is allowed even when the directory is missing or has no valid manifest. */
  allowEmpty?: boolean;
  /** This node's name: manifests whose spec.nodeName names another node are not desired here. */
  nodeName?: string;
  /** Reuse the result for files that did not change since they were last loaded (see ManifestCache). */
  cache?: ManifestCache;
  /** What this node can give a container: larger requests are refused, as in Kubernetes mode. */
  capacity?: NodeCapacity;
}

export interface DirSnapshot extends DesiredSnapshot {
  files: FileResult[];
  /** Skipped documents and files (see FileResult.warnings). */
  warnings: SourceProblem[];
  /** Files failing as a whole or in part: plan leaves containers last applied from them alone. */
  failingOrigins: Set<string>;
  /** Why the snapshot is not complete, if it is not. */
  incompleteReason?: string;
}

function problem(file: string, p: Omit<SourceProblem, 'origin'>): SourceProblem {
  return { origin: file, ...p };
}

/** Parses and validates one file. Never throws for bad content; I/O errors become problems too. */
export async function loadManifestFile(file: string, opts: LoadOptions = {}): Promise<FileResult> {
  if (opts.cache) return opts.cache.load(file, opts);
  const st = statManifest(file);
  return 'problems' in st ? st : (notRegular(file, st) ?? parseManifestFile(file, st, opts));
}

/** The file's stat, or the result reporting why it cannot be read. */
function statManifest(file: string): Stats | FileResult {
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
  return { file, containers: [], problems: [], ignoredDocuments: 0, warnings: [problem(file, { kind: 'skipped', keys: [], message: `${what}, not a regular file: skipped` })] };
}

/** Reads (synchronously: a local file of at most 1 MiB, see util/small-file.ts), parses, validates. */
function parseManifestFile(file: string, st: Stats, opts: LoadOptions): FileResult {
  const result: FileResult = { file, containers: [], problems: [], ignoredDocuments: 0, warnings: [] };
  if (st.size > MAX_MANIFEST_BYTES) {
    return unreadable(file, `file is ${st.size} bytes, larger than the ${MAX_MANIFEST_BYTES} bytes a manifest may have`);
  }
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    return unreadable(file, `cannot read: ${(err as Error).message}`);
  }
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
      result.containers.push(desired);
    }
  }
  return result;
}

/**
 * Results of files that did not change, for a long-running controller whose periodic re-list
 * would otherwise parse and validate every manifest again (most of a no-op pass's cost).
 *
 * A file is unchanged when its device, inode, size, mtime and ctime are; as for acetate's own
 * files, a result is only reused when the file was already older than RACY_MS when it was read
 * (see util/stat-cache.ts).
 */
export class ManifestCache {
  private readonly entries = new Map<string, { stamp: FileStamp; nodeName?: string; result: FileResult }>();
  private readonly now: () => number;

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async load(file: string, opts: LoadOptions = {}): Promise<FileResult> {
    const st = statManifest(file);
    if ('problems' in st) {
      this.entries.delete(file);
      return st;
    }
    const hit = this.entries.get(file);
    if (hit && sameStamp(hit.stamp, st) && hit.nodeName === opts.nodeName) return hit.result;
    const result = parseManifestFile(file, st, opts);
    if (settled(st, this.now())) this.entries.set(file, { stamp: stampOf(st), nodeName: opts.nodeName, result });
    else this.entries.delete(file);
    return result;
  }

  /** Forget files that are no longer listed. */
  retainOnly(files: Iterable<string>): void {
    const keep = new Set(files);
    for (const f of this.entries.keys()) if (!keep.has(f)) this.entries.delete(f);
  }
}

/** Lists manifest files under dir (sorted), skipping ignored names and symlink loops. */
export async function listManifestFiles(dir: string): Promise<{ files: string[]; problems: SourceProblem[]; warnings: SourceProblem[] }> {
  const files: string[] = [];
  const problems: SourceProblem[] = [];
  const warnings: SourceProblem[] = [];
  const seen = new Set<string>();
  async function walk(d: string, depth: number): Promise<void> {
    let real: string;
    try {
      real = await fs.realpath(d);
    } catch (err) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: `cannot resolve: ${(err as Error).message}` });
      return;
    }
    if (seen.has(real)) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: 'symlink loop: directory already read, skipped' });
      return;
    }
    if (depth > MAX_DEPTH) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: `nested more than ${MAX_DEPTH} directories deep, skipped` });
      return;
    }
    seen.add(real);
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch (err) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: `cannot read directory: ${(err as Error).message}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (isIgnoredName(e.name)) continue;
      const p = path.join(d, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        try {
          const st = await fs.stat(p);
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch {
          problems.push({ origin: p, kind: 'unreadable', keys: [], message: 'broken symlink, skipped' });
          continue;
        }
      }
      if (isDir) await walk(p, depth + 1);
      else if (isFile && isManifestPath(p)) files.push(p);
      else if (!isFile && isManifestPath(p)) warnings.push({ origin: p, kind: 'skipped', keys: [], message: 'not a regular file (a FIFO, socket or device): skipped' });
    }
  }
  await walk(dir, 0);
  return { files, problems, warnings };
}

/** Merges per-file results: duplicate keys are conflicts whose containers are left untouched. */
export function mergeFileResults(results: FileResult[], opts: LoadOptions & { dirProblems?: SourceProblem[] } = {}): DirSnapshot {
  const containers = new Map<string, DesiredContainer>();
  const declaredIn = new Map<string, string[]>();
  const problems: SourceProblem[] = [...(opts.dirProblems ?? [])];
  const failingOrigins = new Set<string>();
  const protectedKeys = new Set<string>();
  for (const r of results) {
    for (const c of r.containers) declaredIn.set(c.key, [...(declaredIn.get(c.key) ?? []), `${r.file}:${(c.source as { line: number }).line}`]);
    for (const p of r.problems) {
      problems.push(p);
      failingOrigins.add(r.file);
      p.keys.forEach((k) => protectedKeys.add(k));
    }
  }
  for (const r of results) {
    for (const c of r.containers) {
      const where = declaredIn.get(c.key)!;
      if (where.length > 1) {
        protectedKeys.add(c.key);
        continue;
      }
      containers.set(c.key, c);
    }
  }
  for (const [key, where] of declaredIn) {
    if (where.length > 1) {
      problems.push({ origin: where[0]!.replace(/:\d+$/, ''), line: Number(where[0]!.split(':').pop()), kind: 'conflict', keys: [key], message: `${key} is declared ${where.length} times (${where.join(', ')}); the running container is left untouched until only one remains` });
    }
  }
  return { containers, protectedKeys, problems, failingOrigins, complete: true, files: results, warnings: results.flatMap((r) => r.warnings) };
}

/** Loads a whole manifest tree. Missing, unreadable or empty → `complete: false` unless allowEmpty. */
export async function loadManifestDir(dir: string, opts: LoadOptions = {}): Promise<DirSnapshot> {
  const root = path.resolve(dir);
  let st;
  try {
    st = await fs.stat(root);
  } catch (err) {
    const reason = `manifest directory ${root} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    return incomplete(reason, opts, [{ origin: root, kind: 'unreadable', keys: [], message: reason }]);
  }
  const listed = st.isDirectory() ? await listManifestFiles(root) : { files: [root], problems: [], warnings: [] };
  const results = await Promise.all(listed.files.map((f) => loadManifestFile(f, opts)));
  opts.cache?.retainOnly(listed.files);
  const snap = mergeFileResults(results, { ...opts, dirProblems: listed.problems });
  snap.warnings.unshift(...listed.warnings);
  const rootUnreadable = listed.problems.some((p) => p.origin === root);
  if (rootUnreadable) {
    snap.complete = !!opts.allowEmpty;
    snap.incompleteReason = `manifest directory ${root} cannot be read`;
  } else if (snap.containers.size === 0 && !opts.allowEmpty) {
    snap.complete = false;
    snap.incompleteReason = listed.files.length === 0
      ? `no manifest files in ${root}`
      : `no valid manifest in ${root}`;
  }
  return snap;
}

function incomplete(reason: string, opts: LoadOptions, problems: SourceProblem[]): DirSnapshot {
  return {
    containers: new Map(),
    protectedKeys: new Set(),
    problems,
    failingOrigins: new Set(),
    complete: !!opts.allowEmpty,
    incompleteReason: opts.allowEmpty ? undefined : reason,
    files: [],
    warnings: [],
  };
}

export { formatPath };
