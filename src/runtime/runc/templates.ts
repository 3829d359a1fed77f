/**
 * Templates: the shared, read-only lower layers of container root filesystems (Virtuozzo's OS
 * templates). The built-in `host` template is the node's own `/`; others are imported into
 * <stateDir>/templates/<name>/rootfs from a directory or a rootfs tarball.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { isAlive } from '../../util/processes.js';
import { readJson, writeJsonAtomic } from '../../util/json-file.js';

import { HOST_TEMPLATE } from '../walls/host-masks.js';

export { HOST_TEMPLATE };
export const TEMPLATE_NAME_PATTERN = /^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/;

export interface TemplateInfo {
  name: string;
  /** The directory used as the overlay's lower layer. */
  path: string;
  /** True for `host` (the node's `/`), which is not imported and cannot be removed. */
  builtIn: boolean;
  sizeBytes?: number;
  /** When it was imported (absent for the built-in `host`). */
  importedAt?: string;
  /** What it was imported from. */
  source?: string;
}

interface TemplateMeta {
  name: string;
  importedAt: string;
  source: string;
  sizeBytes: number;
}

export class TemplateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TemplateError';
  }
}

const TARBALL = /\.(tar|tar\.gz|tgz|tar\.xz|txz|tar\.bz2|tbz2|tar\.zst)$/;

/** Total size of regular files (and symlinks) under a directory, without following symlinks. */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile() || e.isSymbolicLink()) {
        try {
          total += (await lstat(p)).size;
        } catch {
          /* vanished */
        }
      }
    }
  }
  return total;
}

export class TemplateStore {
  readonly dir: string;

  /** Where the node's own root filesystem is seen (`/`, or e.g. `/host` inside a pod). */
  readonly hostRoot: string;

  constructor(opts: { stateDir: string; hostRoot?: string }) {
    this.dir = path.join(path.resolve(opts.stateDir), 'templates');
    this.hostRoot = path.resolve(opts.hostRoot ?? '/');
  }

  static checkName(name: string): void {
    if (name === HOST_TEMPLATE) return;
    if (!TEMPLATE_NAME_PATTERN.test(name) || name.length > 128) {
      throw new TemplateError(`invalid template name '${name}': use lowercase letters, digits, '-', '.', '_' (starting and ending with a letter or digit)`);
    }
  }

  private templateDir(name: string): string {
    return path.join(this.dir, name);
  }

  private rootfsOf(name: string): string {
    return path.join(this.templateDir(name), 'rootfs');
  }

  private async isInstalled(name: string): Promise<boolean> {
    try {
      return (await stat(this.rootfsOf(name))).isDirectory();
    } catch {
      return false;
    }
  }

  async list(): Promise<TemplateInfo[]> {
    const out: TemplateInfo[] = [{ name: HOST_TEMPLATE, path: this.hostRoot, builtIn: true }];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw new TemplateError(`cannot list templates in ${this.dir}`, { cause: err });
    }
    for (const name of names.sort()) {
      if (name.startsWith('.') || !TEMPLATE_NAME_PATTERN.test(name)) continue; // in-progress imports/removals
      if (!(await this.isInstalled(name))) continue;
      const meta = await readJson<TemplateMeta>(path.join(this.templateDir(name), 'meta.json')).catch(() => undefined);
      out.push({
        name,
        path: this.rootfsOf(name),
        builtIn: false,
        ...(meta ? { sizeBytes: meta.sizeBytes, importedAt: meta.importedAt, source: meta.source } : {}),
      });
    }
    return out;
  }

  /** The lower dir of a template; throws if it is not installed. */
  async resolve(name: string): Promise<string> {
    if (name === HOST_TEMPLATE) return this.hostRoot;
    TemplateStore.checkName(name);
    if (!(await this.isInstalled(name))) {
      throw new TemplateError(`template '${name}' is not installed on this node (acetate template import ${name} SOURCE)`);
    }
    return this.rootfsOf(name);
  }

  /**
   * Import a template from a directory (copied with modes, owners and symlinks) or a rootfs tarball
   * (.tar, .tar.gz, .tgz...). Unpacked in a temp dir and renamed into place, so a template is
   * either fully there or absent.
   */
  async import(name: string, source: string): Promise<TemplateInfo> {
    if (name === HOST_TEMPLATE) throw new TemplateError(`'${HOST_TEMPLATE}' is the built-in template (the node's /) and cannot be imported`);
    TemplateStore.checkName(name);
    const src = path.resolve(source);
    let srcStat;
    try {
      srcStat = await stat(src);
    } catch (err) {
      throw new TemplateError(`cannot import template '${name}': ${source} does not exist`, { cause: err });
    }
    if (await this.isInstalled(name)) {
      throw new TemplateError(`template '${name}' is already installed; remove it first (acetate template remove ${name})`);
    }
    await mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.import-${process.pid}-${randomBytes(4).toString('hex')}-${name}`);
    const tmpRootfs = path.join(tmp, 'rootfs');
    try {
      await mkdir(tmpRootfs, { recursive: true });
      if (srcStat.isDirectory()) {
        await exec('cp', ['-a', '--', `${src}/.`, `${tmpRootfs}/`]);
      } else if (srcStat.isFile() && TARBALL.test(src)) {
        await exec('tar', ['-x', '--numeric-owner', '-p', '-f', src, '-C', tmpRootfs]);
      } else {
        throw new TemplateError(`cannot import template '${name}' from ${source}: expected a directory or a .tar/.tar.gz/.tgz rootfs tarball`);
      }
      const meta: TemplateMeta = { name, importedAt: new Date().toISOString(), source: src, sizeBytes: await diskUsage(tmpRootfs) };
      await writeJsonAtomic(path.join(tmp, 'meta.json'), meta);
      await rm(this.templateDir(name), { recursive: true, force: true }); // a leftover without rootfs
      await rename(tmp, this.templateDir(name));
      return { name, path: this.rootfsOf(name), builtIn: false, sizeBytes: meta.sizeBytes, importedAt: meta.importedAt, source: src };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof TemplateError) throw err;
      throw new TemplateError(`cannot import template '${name}' from ${source}`, { cause: err });
    } finally {
      await this.cleanupLeftovers().catch(() => undefined);
    }
  }

  /** Remove a template; refused while containers use it (`inUseBy`: their keys). */
  async remove(name: string, opts: { inUseBy: string[] }): Promise<void> {
    if (name === HOST_TEMPLATE) throw new TemplateError(`'${HOST_TEMPLATE}' is the built-in template (the node's /) and cannot be removed`);
    TemplateStore.checkName(name);
    if (opts.inUseBy.length > 0) {
      throw new TemplateError(`template '${name}' is in use by ${opts.inUseBy.join(', ')}; remove those containers first`);
    }
    if (!(await this.isInstalled(name))) {
      throw new TemplateError(`template '${name}' is not installed on this node`);
    }
    // Rename first so that the template disappears at once, then delete at leisure.
    const trash = path.join(this.dir, `.remove-${name}-${randomBytes(4).toString('hex')}`);
    await rename(this.templateDir(name), trash);
    await rm(trash, { recursive: true, force: true });
  }

  /** Delete removals interrupted by a crash and imports whose process is gone (hidden dirs). */
  async cleanupLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const importer = /^\.import-(\d+)-/.exec(n);
      const stale = n.startsWith('.remove-') || (importer !== null && !(await isAlive(Number(importer[1]))));
      if (stale) await rm(path.join(this.dir, n), { recursive: true, force: true });
    }
  }
}
