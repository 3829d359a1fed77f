/**
 * A source of desired state (a directory of files, the Kubernetes API). The loop asks a source
 * for a snapshot each time it reconciles a key, so events only need to say which keys changed.
 */
import type { DesiredContainer } from '../api/types.js';

/** A manifest that could not be used: where, and why. */
export interface SourceProblem {
  /** File path, or `kube:namespace/name`. */
  origin: string;
  line?: number;
  /** Dotted field path, e.g. spec.resources.memory. */
  field?: string;
  message: string;
  /** Keys this problem concerns when known (their containers are left exactly as they are). */
  keys: string[];
  /**
   * `skipped`: a warning (a document of another kind, a FIFO), never in `problems`. `forbidden`:
   * valid, but beyond the security level of its namespace (src/policy): not created, and a
   * running container of the key is held as it is.
   */
  kind: 'invalid' | 'conflict' | 'unreadable' | 'skipped' | 'forbidden';
  /** With `forbidden`: the level and the rule broken (e.g. baseline, capabilities_baseline). */
  securityRule?: { level: string; rule: string };
}

export interface DesiredSnapshot {
  /** Valid desired containers by key. */
  containers: Map<string, DesiredContainer>;
  /** Keys whose actual containers must not be touched (invalid or conflicting declarations). */
  protectedKeys: Set<string>;
  /** Origins (files, objects) that currently fail, with their keys when known. */
  problems: SourceProblem[];
  /**
   * True when the snapshot is a complete, fresh view of the source, so a managed container
   * missing from it may be destroyed. False e.g. before the first full list, or while the
   * manifest directory is missing or yields nothing without --allow-empty.
   */
  complete: boolean;
}

/**
 * A snapshot that declares nothing and is not complete, with why: what a source shows before it
 * has anything (no commit applied, no source at all). Incomplete, so no managed container is
 * destroyed on its strength. Fresh collections on each call: callers may add to them.
 */
export function nothingYetSnapshot(incompleteReason: string): DesiredSnapshot & { failingOrigins: Set<string>; incompleteReason: string } {
  return { containers: new Map(), protectedKeys: new Set(), problems: [], complete: false, failingOrigins: new Set(), incompleteReason };
}

export interface DesiredSource {
  readonly name: string;
  /** Starts watching; onChange receives the keys that may have changed ('all' after a re-list). */
  start(onChange: (keys: string[] | 'all') => void): Promise<void>;
  stop(): Promise<void>;
  /** The current desired state. */
  snapshot(): DesiredSnapshot;
  /** True after the first complete list/scan. */
  synced(): boolean;
}

/** A source that fetches revisions (Git): what `describe` and the controller record show of it. */
export interface SourceSyncState {
  url: string;
  ref: string;
  path: string;
  /** The commit applied (full hash), once one is good. */
  revision?: string;
  /** The last sync's failure, while it lasts: the last good revision stays applied. */
  lastError?: { message: string; time: string; failures: number; nextRetryAt?: string };
  /** With --verify-signatures: what the check found on the applied commit. */
  signature?: string;
  lastSyncAt?: string;
}
