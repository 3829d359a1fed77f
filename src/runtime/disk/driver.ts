/**
 * A container's disk limit (`resources.disk`), behind a small interface beside the Runtime, so
 * that another way of bounding a private area can be added without touching the runtime or the
 * loop.
 *
 * The driver acetate ships is XFS on a loop device (xfs-loop.ts): the private area lives in a
 * sparse image file formatted XFS, attached with a loop device and mounted on the node under the
 * container's dir; the overlay's upper and work dirs are on that filesystem. It works on any
 * state-dir filesystem and any kernel with loop and XFS. Growing is live; shrinking needs a copy
 * into a new image, done at the next start.
 *
 * A project-quota driver (for nodes whose state dir is on XFS mounted with `prjquota`) would
 * implement the same interface: `prepare` makes `<dir>/disk/` a project directory and sets its
 * hard block limit with `xfs_quota -x -c 'limit -p bhard=…'`; `resizeLive` changes the limit both
 * ways (a shrink below the usage is infeasible, not deferred); `usage` reads `xfs_quota -c
 * 'quota -p'`; `release` has nothing to detach. It is not shipped: this development kernel has no
 * XFS quota support, so it could not be tested.
 */
import type { DeferredResize, DiskUsage } from '../runtime.js';

/** One container's private area as a disk driver sees it. */
export interface DiskArea {
  /** The container's dir in the state dir (`<stateDir>/containers/<id>`). */
  dir: string;
  /** `namespace/name`, for messages. */
  key: string;
}

/** Where the overlay's upper and work dirs are (both on the same filesystem, as overlayfs needs). */
export interface OverlayLayers {
  upper: string;
  work: string;
}

export interface DiskResult {
  /** The size in force afterwards (undefined: the private area is unbounded). */
  sizeBytes?: number;
  /** A change that was not made now, and why (Deferred), or cannot be made with this data (Infeasible). */
  deferred?: DeferredResize;
}

export interface DiskDriver {
  readonly name: string;
  /** Throws a RuntimeUnavailableError naming the package to install when a tool is missing. */
  preflight(): Promise<void>;
  /** The overlay layers of a container with (limited) or without a disk limit. Pure. */
  layers(area: DiskArea, limited: boolean): OverlayLayers;
  /**
   * Before a start (the process is not running): make the private area match `sizeBytes`
   * (create it, move it in or out of a bounded filesystem, grow it, shrink it by copying) and
   * attach it. Finishes or undoes what an interrupted earlier call left. Never loses data: a shrink
   * the data does not fit in keeps the current size and reports it as infeasible.
   */
  prepare(area: DiskArea, sizeBytes: number | undefined): Promise<DiskResult>;
  /** While the process runs: apply what can be applied live (a grow); report the rest as deferred. */
  resizeLive(area: DiskArea, sizeBytes: number | undefined): Promise<DiskResult>;
  /** Size and use of an attached bounded private area; undefined when unbounded or not attached. */
  usage(area: DiskArea): Promise<DiskUsage | undefined>;
  /** Detaches the private area from the node (keeps its data). Idempotent. */
  release(area: DiskArea): Promise<void>;
  /**
   * Detaches what killed acetates left under the containers dir (loop devices without a mount,
   * mounts of containers without a record, half-made images). Called by the process that changes
   * the node, never by read-only commands.
   */
  sweep(containersDir: string): Promise<void>;
}

/** A disk limit that cannot be applied as asked (too large for the node, too small for XFS). */
export class DiskLimitError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DiskLimitError';
  }
}
