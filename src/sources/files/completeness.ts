/**
 * The safety rule of the file source, in one place for `apply`/`plan` (loadManifestDir) and
 * `run` (FileSource): when does what was read count as the complete desired state, so that a
 * container missing from it may be destroyed?
 *
 * Not complete (nothing is destroyed), unless --allow-empty says an empty result is meant:
 * - the tree has not been read yet (run, before its first scan; --allow-empty does not help);
 * - the root is missing or cannot be read;
 * - no valid container was found (no manifest files, or none valid).
 * Files with problems never count as "declaring nothing": they are failing origins, whose
 * containers plan leaves as last applied.
 *
 * Pure: the callers read the disk, this only judges what they found.
 */
import type { SourceProblem } from '../../contracts/source.js';

/** What reading the root of the manifest tree gave. */
export type RootState = { kind: 'not-read' } | { kind: 'ok' } | { kind: 'missing' } | { kind: 'unreadable'; detail: string };

export interface ReadOutcome {
  /** The manifest directory (or file), absolute. */
  root: string;
  rootState: RootState;
  /** The manifest files read, each with its problems. */
  files: readonly { file: string; problems: readonly SourceProblem[] }[];
  /** Valid containers found, once conflicts and protected keys are left out. */
  containers: number;
  /** --allow-empty: an empty or missing tree means "no containers". */
  allowEmpty: boolean;
}

export interface Completeness {
  complete: boolean;
  /** Why not complete; set exactly when complete is false. */
  incompleteReason?: string;
  /** Files failing as a whole or in part. */
  failingOrigins: Set<string>;
}

/** Files with at least one problem. */
export function failingOriginsOf(files: ReadOutcome['files']): Set<string> {
  return new Set(files.filter((f) => f.problems.length > 0).map((f) => f.file));
}

export function judgeCompleteness(read: ReadOutcome): Completeness {
  const failingOrigins = failingOriginsOf(read.files);
  const reason = incompleteReason(read);
  return reason === undefined ? { complete: true, failingOrigins } : { complete: false, incompleteReason: reason, failingOrigins };
}

function incompleteReason(read: ReadOutcome): string | undefined {
  const { root, rootState } = read;
  if (rootState.kind === 'not-read') return `manifest directory ${root} has not been read yet`;
  if (read.allowEmpty) return undefined;
  switch (rootState.kind) {
    case 'missing':
      return `manifest directory ${root} is missing`;
    case 'unreadable':
      return `manifest directory ${root} cannot be read: ${rootState.detail}`;
    case 'ok':
      if (read.containers > 0) return undefined;
      return read.files.length === 0 ? `no manifest files in ${root}` : `no valid manifest in ${root}`;
  }
}

/**
 * The listing's problems below the root (a manifest link refused because it leads out of the tree,
 * a link that cannot be resolved) as failing origins: a container last applied from such a path
 * is left as it is, as for a file that fails to parse. The root's own problem is the verdict's.
 */
export function addListingProblems(failing: Set<string>, problems: readonly { origin: string }[], root: string): Set<string> {
  for (const p of problems) if (p.origin !== root) failing.add(p.origin);
  return failing;
}
