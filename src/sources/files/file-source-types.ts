/** What a FileSource (watch.ts) is given, and the snapshot it gives. */
import type { Clock } from '../../contracts/clock.js';
import type { DesiredSnapshot, SourceProblem } from '../../contracts/source.js';
import type { NodeCapacity } from '../kube/desired.js';
import type { FileResult } from './manifest-file.js';

export interface FileSourceOptions {
  dir: string;
  /** Allow a missing/empty directory to mean "no containers" (destroy everything). */
  allowEmpty?: boolean;
  /** This node's name (manifests for other nodes are not desired here). */
  nodeName?: string;
  /** Quiet period before changed files are read. Default 100 ms. */
  debounceMs?: number;
  /** Full re-list period; 0 disables. Default 5 min. */
  relistMs?: number;
  /** Timers (debounce, re-list). Default: the real clock. */
  clock?: Clock;
  /** Called with watcher errors (the source keeps going; the re-list repairs). */
  onError?: (err: Error) => void;
  /** Watch the tree (default). Off when only the owner changes it and re-lists it itself (the Git source). */
  watch?: boolean;
  /** What this node can give a container (larger requests are invalid). Default: not checked. */
  capacity?: NodeCapacity;
  /** Called once per new warning (a skipped document or file). */
  onWarning?: (w: SourceProblem) => void;
  /**
   * A manifest cache file (manifest-cache-file.ts) to start from and to leave, after each full
   * read, for `acetate plan`; `fingerprint`: manifestFingerprint of this source's node name and capacity.
   */
  persistedCache?: { file: string; fingerprint: string };
}

/** A file source snapshot: the DesiredSnapshot plus what `acetate get`/metrics want to show. */
export interface FileSnapshot extends DesiredSnapshot {
  failingOrigins: Set<string>;
  incompleteReason?: string;
  files: FileResult[];
}
