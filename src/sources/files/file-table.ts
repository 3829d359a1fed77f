/**
 * The file source's memory of each manifest file: its latest result, and the keys it declared the
 * last time it was valid ("last known good"). A file that becomes invalid keeps those keys
 * protected (their containers are left as last applied) until it is fixed or deleted: deleting a
 * file is the only way to destroy its containers.
 */
import { sameJson } from '../../api/hash.js';
import type { SourceProblem } from '../../contracts/source.js';
import { mergeFileResults, type DirSnapshot } from './load.js';
import type { FileResult } from './manifest-file.js';

interface FileEntry {
  result: FileResult;
}

/**
 * Whether two results of a file say the same (containers, problems, warnings): a reload that
 * yields the same emits nothing. Compared by a walk (sameJson), not by keeping each file's
 * canonical JSON: at 2,500 files those texts were ~8 MB of the loop's heap.
 */
function sameResult(a: FileResult, b: FileResult): boolean {
  return sameJson(a.containers, b.containers) && sameJson(a.problems, b.problems) && sameJson(a.warnings, b.warnings);
}

export class FileTable {
  private files = new Map<string, FileEntry>();
  /** Keys each file declared the last time it loaded without problems. */
  private lastGood = new Map<string, Set<string>>();

  has(file: string): boolean {
    return this.files.has(file);
  }

  /** The file's latest result (the very object the manifest cache gave, when it gave it). */
  resultOf(file: string): FileResult | undefined {
    return this.files.get(file)?.result;
  }

  fileNames(): string[] {
    return [...this.files.keys()];
  }

  /** Results per file, sorted by path. */
  results(): FileResult[] {
    return [...this.files.values()].map((e) => e.result).sort((a, b) => (a.file < b.file ? -1 : 1));
  }

  /** Forgets a file; adds to changed the keys it declared. */
  remove(file: string, changed: Set<string>): void {
    for (const k of this.keysOf(file)) changed.add(k);
    this.files.delete(file);
    this.lastGood.delete(file);
  }

  /** Records a file's new result; adds to changed the keys concerned when it differs. Returns whether it did. */
  apply(r: FileResult, changed: Set<string>): boolean {
    const prev = this.files.get(r.file);
    if (prev && prev.result === r) return false; // the same result, from the manifest cache
    if (prev && sameResult(prev.result, r)) {
      prev.result = r; // same content: later cache hits compare by identity
      return false;
    }
    for (const k of this.keysOf(r.file)) changed.add(k);
    this.files.set(r.file, { result: r });
    const valid = new Set(r.containers.map((c) => c.key));
    if (r.problems.length === 0) {
      this.lastGood.set(r.file, valid);
    } else {
      const lg = this.lastGood.get(r.file) ?? new Set<string>();
      for (const k of valid) lg.add(k);
      this.lastGood.set(r.file, lg);
    }
    for (const k of this.keysOf(r.file)) changed.add(k);
    return true;
  }

  /** The merged results, with the last known good keys of failing files protected. */
  merge(dirProblems: SourceProblem[]): DirSnapshot {
    const results = this.results();
    const snap = mergeFileResults(results, { dirProblems });
    for (const r of results) {
      if (r.problems.length === 0) continue;
      const valid = new Set(r.containers.map((c) => c.key));
      for (const k of this.lastGood.get(r.file) ?? []) if (!valid.has(k)) snap.protectedKeys.add(k);
    }
    for (const k of snap.protectedKeys) snap.containers.delete(k);
    return snap;
  }

  private keysOf(file: string): Set<string> {
    const out = new Set<string>(this.lastGood.get(file) ?? []);
    const e = this.files.get(file);
    if (e) {
      for (const c of e.result.containers) out.add(c.key);
      for (const p of e.result.problems) for (const k of p.keys) out.add(k);
    }
    return out;
  }
}
