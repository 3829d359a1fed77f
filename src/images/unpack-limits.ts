/**
 * Bounds on what one layer may take on the node while it is unpacked: a small blob can expand
 * enormously (a 1.4 MB gzip of zeros is 301 MB of tar), and nothing in the manifest or config says
 * how large a layer is uncompressed. So the uncompressed stream is counted as it is fed to tar
 * (tar writes at most about that much: file contents are in the stream, sparse members take less),
 * and the unpack is stopped
 * - when the stream passes ACETATE_MAX_LAYER_SIZE (default 16Gi, above the largest layers of
 *   common images such as CUDA runtimes; 0 turns it off), or
 * - when the state dir's free space falls below the node's floor (ACETATE_MIN_FREE, see
 *   runtime/free-space.ts), checked every 16 MiB of stream, so a pull stops before the node fills
 *   up rather than at ENOSPC.
 * The unpack's temporary dir is then removed whole (unpack.ts), nothing of the layer is kept.
 */
import { statfsSync } from 'node:fs';
import { formatMemory, parseMemory } from '../api/quantity.js';
import { minFreeBytes } from '../runtime/free-space.js';
import { ImageStoreError } from './errors.js';

export const DEFAULT_MAX_LAYER = 16 * 2 ** 30;
const CHECK_EVERY = 16 * 2 ** 20;

export const mi = (n: number): string => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;

/** The bound on one layer's uncompressed size (ACETATE_MAX_LAYER_SIZE); 0: none. */
export function maxLayerBytes(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.ACETATE_MAX_LAYER_SIZE;
  if (v === undefined || v === '') return DEFAULT_MAX_LAYER;
  try {
    return parseMemory(v);
  } catch (err) {
    throw new ImageStoreError(`ACETATE_MAX_LAYER_SIZE=${JSON.stringify(v.slice(0, 40))} is not a quantity such as 8Gi`, { cause: err });
  }
}

/** A layer refused for its size or for the node's free space (the pull fails with this reason). */
export class LayerSpaceError extends ImageStoreError {
  constructor(message: string) {
    super(message);
    this.name = 'LayerSpaceError';
  }
}

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Counts a layer's uncompressed stream; throws a LayerSpaceError when a bound is passed. */
export class LayerBudget {
  /** Bytes of uncompressed stream seen so far. */
  bytes = 0;
  private nextCheck = CHECK_EVERY;
  private readonly max: number;
  private readonly floor: number;
  /** Free space on the state dir when the unpack began (at ENOSPC it is nil: this says what there was). */
  private readonly freeAtStart: number;

  constructor(
    private readonly dir: string,
    private readonly what: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.max = maxLayerBytes(env);
    this.floor = minFreeBytes(env);
    this.freeAtStart = freeBytes(dir);
  }

  add(n: number): void {
    this.bytes += n;
    if (this.max > 0 && this.bytes > this.max) {
      throw new LayerSpaceError(
        `${this.what} unpacks to more than ${formatMemory(this.max)} (ACETATE_MAX_LAYER_SIZE, the bound on one layer); refused, nothing of it kept`,
      );
    }
    if (this.floor > 0 && this.bytes >= this.nextCheck) {
      this.nextCheck = this.bytes + CHECK_EVERY;
      const free = freeBytes(this.dir);
      if (free < this.floor) {
        throw new LayerSpaceError(
          `${this.what}: unpacking stopped after ${mi(this.bytes)}: the state dir has ${mi(free)} free, less than the ${formatMemory(this.floor)} kept free on the node (ACETATE_MIN_FREE); nothing of the layer kept, free space first`,
        );
      }
    }
  }

  /** The words for tar's ENOSPC: how much was free and how much the whole layer needs (its stream, read to the end). */
  noSpace(tarText: string): LayerSpaceError {
    return new LayerSpaceError(
      `${this.what}: no space left on the state dir (${mi(this.freeAtStart)} free when the unpack began, the layer needs ${mi(this.bytes)}); nothing of it kept, free space first (tar: ${tarText.split('\n')[0]})`,
    );
  }
}
