/**
 * What the runc runtime asks of the disk driver, in the runtime's own terms (container paths and
 * applied records), so that the runtime itself only carries one-line hooks. Errors about the
 * limit name the manifest's file, line and field.
 */
import type { Resources } from '../../api/types.js';
import type { AppliedRecord, DeferredResize, DiskUsage } from '../runtime.js';
import type { ContainerPaths } from '../runc/paths.js';
import { DiskLimitError, type DiskArea, type DiskDriver, type DiskResult, type OverlayLayers } from './driver.js';
import { XfsLoopDriver } from './xfs-loop.js';

type Rec = Pick<AppliedRecord, 'namespace' | 'name' | 'spec'> & Partial<Pick<AppliedRecord, 'source'>>;

function areaOf(cp: ContainerPaths, r: Rec): DiskArea {
  return { dir: cp.dir, key: `${r.namespace}/${r.name}` };
}

/** "web.yaml:9: spec.resources.disk: " for a file source, "" otherwise. */
function where(r: Rec): string {
  const src = r.source;
  return src?.kind === 'file' ? `${src.file}:${src.line}: spec.resources.disk: ` : 'spec.resources.disk: ';
}

export class DiskHooks {
  readonly driver: DiskDriver;
  private preflightDone?: Promise<void>;

  constructor(driver?: DiskDriver) {
    this.driver = driver ?? new XfsLoopDriver();
  }

  layers(cp: ContainerPaths, r: Rec): OverlayLayers {
    return this.driver.layers(areaOf(cp, r), r.spec.resources.diskBytes !== undefined);
  }

  /** The dirs create() makes: the plain upper and work dirs, only without a disk limit. */
  plainLayers(cp: ContainerPaths, r: Rec): string[] {
    if (r.spec.resources.diskBytes !== undefined) return [];
    const l = this.layers(cp, r);
    return [l.upper, l.work];
  }

  private async ready(): Promise<void> {
    this.preflightDone ??= this.driver.preflight();
    this.preflightDone.catch(() => (this.preflightDone = undefined));
    await this.preflightDone;
  }

  private async run<T>(r: Rec, fn: () => Promise<T>): Promise<T> {
    try {
      if (r.spec.resources.diskBytes !== undefined) await this.ready();
      return await fn();
    } catch (err) {
      if (err instanceof DiskLimitError) throw new DiskLimitError(`${where(r)}${err.message}`, { cause: err });
      throw err;
    }
  }

  /** Before a start: the private area as the record says (a shrink that does not fit keeps the size, reported later by the plan). */
  prepare(cp: ContainerPaths, r: Rec): Promise<DiskResult> {
    return this.run(r, () => this.driver.prepare(areaOf(cp, r), r.spec.resources.diskBytes));
  }

  resizeLive(cp: ContainerPaths, r: Rec, wanted: Resources): Promise<{ sizeBytes?: number; deferred?: DeferredResize }> {
    return this.run({ ...r, spec: { ...r.spec, resources: wanted } }, () => this.driver.resizeLive(areaOf(cp, r), wanted.diskBytes));
  }

  /** Only for records with a limit: list() asks for every container on every pass of the loop. */
  async usage(cp: ContainerPaths, r: Rec): Promise<DiskUsage | undefined> {
    if (r.spec.resources.diskBytes === undefined) return undefined;
    return this.driver.usage(areaOf(cp, r));
  }

  sweep(containersDir: string): Promise<void> {
    return this.driver.sweep(containersDir);
  }
}
