/**
 * Reads a directory tree of Container manifests into a DesiredSnapshot, for `apply` and `plan`. A
 * file that cannot be used is reported with file, line and field, and never makes its containers
 * disappear: its path is listed in failingOrigins so plan leaves their containers as last applied.
 * Whether the result is complete (may destroy) is judged by judgeCompleteness, as for `run`.
 */
import path from 'node:path';
import type { DesiredContainer } from '../../api/types.js';
import type { DesiredSnapshot, SourceProblem } from '../../contracts/source.js';
import { addListingProblems, failingOriginsOf, judgeCompleteness } from './completeness.js';
import { loadManifestFile, type FileResult, type LoadOptions } from './manifest-file.js';
import { readManifestTree, type TreeListing } from './read-tree.js';

export { loadManifestFile, MAX_MANIFEST_BYTES, type FileResult, type LoadOptions } from './manifest-file.js';
export { ManifestCache } from './manifest-cache.js';
export { listManifestFiles } from './read-tree.js';
export { formatPath } from '../../api/validate.js';

export interface DirSnapshot extends DesiredSnapshot {
  files: FileResult[];
  /** Skipped documents and files (see FileResult.warnings). */
  warnings: SourceProblem[];
  /** Files failing as a whole or in part: plan leaves containers last applied from them alone. */
  failingOrigins: Set<string>;
  /** Why the snapshot is not complete, if it is not. */
  incompleteReason?: string;
}

/** Merges per-file results (failingOrigins: the files with problems): duplicate keys are conflicts whose containers are left untouched. */
export function mergeFileResults(results: FileResult[], opts: LoadOptions & { dirProblems?: SourceProblem[] } = {}): DirSnapshot {
  const containers = new Map<string, DesiredContainer>();
  const declaredIn = new Map<string, string[]>();
  const problems: SourceProblem[] = [...(opts.dirProblems ?? [])];
  const protectedKeys = new Set<string>();
  for (const r of results) {
    for (const c of r.containers) declaredIn.set(c.key, [...(declaredIn.get(c.key) ?? []), `${r.file}:${(c.source as { line: number }).line}`]);
    for (const p of r.problems) {
      problems.push(p);
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
      problems.push({
        origin: where[0]!.replace(/:\d+$/, ''),
        line: Number(where[0]!.split(':').pop()),
        kind: 'conflict',
        keys: [key],
        message: `${key} is declared ${where.length} times (${where.join(', ')}); the running container is left untouched until only one remains`,
      });
    }
  }
  // complete is judged by the caller (judgeCompleteness): this only merges what was read.
  return {
    containers,
    protectedKeys,
    problems,
    failingOrigins: failingOriginsOf(results),
    complete: true,
    files: results,
    warnings: results.flatMap((r) => r.warnings),
  };
}

/** Loads a whole manifest tree. Missing, unreadable or empty → `complete: false` unless allowEmpty. */
export async function loadManifestDir(dir: string, opts: LoadOptions = {}): Promise<DirSnapshot> {
  const root = path.resolve(dir);
  return loadListed(root, await readManifestTree(root), opts);
}

/**
 * As loadManifestDir, for the loop planning an asker's `plan` (FileSource.readForAsker): 'has
 * links' for a tree with a symlink, which the asker reads itself (one through /proc/self, its cwd
 * or root, leads elsewhere for each process).
 */
export async function loadManifestDirUnlinked(dir: string, opts: LoadOptions = {}): Promise<DirSnapshot | 'has links'> {
  const root = path.resolve(dir);
  const listed = await readManifestTree(root);
  return listed.links > 0 ? 'has links' : loadListed(root, listed, opts);
}

async function loadListed(root: string, listed: TreeListing, opts: LoadOptions): Promise<DirSnapshot> {
  const results = await Promise.all(listed.files.map((f) => loadManifestFile(f, { ...opts, within: listed.rootReal })));
  opts.cache?.retainOnly(listed.files);
  return snapshotOfTree(root, listed, results, !!opts.allowEmpty);
}

/**
 * The snapshot of a tree from its listing and its files' results, in the listing's order: what
 * `apply` and `plan` plan with (loadManifestDir), and what the loop answers a `plan` with
 * (FileSource.asLoaded), so the two print the same problems in the same order.
 */
export function snapshotOfTree(
  root: string,
  listed: Pick<TreeListing, 'rootState' | 'problems' | 'warnings'>,
  results: FileResult[],
  allowEmpty: boolean,
): DirSnapshot {
  const snap = mergeFileResults(results, { dirProblems: listed.problems });
  snap.warnings.unshift(...listed.warnings);
  return judged(snap, root, listed, allowEmpty);
}

/**
 * `snap` judged complete or not (judgeCompleteness), its failing origins with the listing's: as
 * apply and plan judge a tree (snapshotOfTree) and the loop its own (FileSource, whose merge keeps
 * what failing files declared before).
 */
export function judged(snap: DirSnapshot, root: string, listed: Pick<TreeListing, 'rootState' | 'problems'>, allowEmpty: boolean): DirSnapshot {
  const verdict = judgeCompleteness({ root, rootState: listed.rootState, files: snap.files, containers: snap.containers.size, allowEmpty });
  snap.complete = verdict.complete;
  snap.failingOrigins = addListingProblems(verdict.failingOrigins, listed.problems, root);
  if (verdict.incompleteReason) snap.incompleteReason = verdict.incompleteReason;
  return snap;
}
