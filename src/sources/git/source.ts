/**
 * GitSource: a branch, tag or commit of a Git repository as a DesiredSource (`run --git`, `apply
 * --git`). Each revision is fetched shallowly into a bare cache repository under the state dir,
 * checked out whole into a directory of its own (trees/<commit>), and published by renaming a
 * `current` symlink over the old one; the manifests are then read by a FileSource over
 * current/<path> with no watcher: only this source changes the tree, and it reads it again
 * (awaited) after each swap, so a snapshot is always of one complete commit.
 *
 * Safety, as for a directory: a sync that fails (network, auth, ref or path gone, a signature
 * refused) changes nothing: the last good revision stays desired, the error is kept for
 * describe/metrics and logged, and the sync is retried with back-off. Before any revision is good,
 * the snapshot is incomplete (nothing is destroyed, even with --allow-empty). Symlinks committed
 * in the repository that resolve outside the tree are refused by the FileSource (contained.ts).
 */
import { createHash } from 'node:crypto';
import { readdir, readlink, realpath, rename, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { DesiredContainer } from '../../api/types.js';
import { hashOf } from '../../api/hash.js';
import { nothingYetSnapshot, type DesiredSource } from '../../contracts/source.js';
import { realClock, type Clock, type TimerHandle } from '../../contracts/clock.js';
import { silentLogger, type Logger } from '../../contracts/logger.js';
import { backoffDelay } from '../../util/backoff.js';
import type { NodeCapacity } from '../kube/desired.js';
import { isInside } from '../files/contained.js';
import { FileSource, type FileSnapshot } from '../files/watch.js';
import type { SourceProblem, SourceSyncState } from '../../contracts/source.js';
import { GitSourceError, type GitDriver } from './driver.js';
import { GitCli, maskCredentials } from './git-cli.js';
import { resolveRef, shortHash } from './refs.js';

export interface GitSourceOptions {
  url: string;
  /** Branch, tag, full ref name or full commit hash; default the remote's HEAD. */
  ref?: string;
  /** Directory of the repository holding the manifests; default its root. */
  subpath?: string;
  /** Poll period. */
  intervalMs: number;
  /** Where caches and checkouts live (the state dir's git/). */
  cacheDir: string;
  /** File of ASCII-armored OpenPGP public keys: only commits signed by one of them are applied. */
  keyring?: string;
  allowEmpty?: boolean;
  nodeName?: string;
  capacity?: NodeCapacity;
  driver?: GitDriver;
  clock?: Clock;
  logger?: Logger;
  /** First retry delay after a failure (doubling up to maxBackoffMs). Default 1 s. */
  backoffBaseMs?: number;
  maxBackoffMs?: number;
  /** Called when the applied revision changes (metrics). */
  onRevision?: (revision: string) => void;
  onWarning?: (w: SourceProblem) => void;
}

/** What describe, get and metrics show of the source. */
export type GitSourceState = SourceSyncState;

/** `--path` as a relative path inside the repository ('' for its root); throws on `..` or an absolute path. */
export function normalizeSubpath(p: string | undefined): string {
  if (p === undefined || p === '' || p === '.' || p === '/') return '';
  const n = path.posix.normalize(p).replace(/^\.\/|\/$/g, '');
  if (path.posix.isAbsolute(n) || n === '..' || n.startsWith('../')) throw new Error(`--path ${p}: must be a directory inside the repository`);
  return n;
}

export class GitSource implements DesiredSource {
  readonly name: string;
  private readonly opts: GitSourceOptions;
  private readonly driver: GitDriver;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly subpath: string;
  private readonly base: string;
  private readonly files: FileSource;
  private revision?: string;
  private signature?: string;
  private lastError?: GitSourceState['lastError'];
  private lastSyncAt?: string;
  private failures = 0;
  private attempted = false;
  private timer?: TimerHandle;
  private stopped = false;
  private onChange?: (keys: string[] | 'all') => void;
  private running?: Promise<void>;
  private again = false;
  /** The stamped snapshot, for the inner snapshot and revision it was made from. */
  private stamped?: { inner: FileSnapshot; revision: string; out: FileSnapshot };

  constructor(opts: GitSourceOptions) {
    this.opts = opts;
    this.subpath = normalizeSubpath(opts.subpath);
    this.name = `git:${maskCredentials(opts.url)}${opts.ref ? `@${opts.ref}` : ''}${this.subpath ? `//${this.subpath}` : ''}`;
    this.driver = opts.driver ?? new GitCli();
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    const id = createHash('sha256')
      .update(`${opts.url}\0${opts.ref ?? ''}\0${this.subpath}`)
      .digest('hex')
      .slice(0, 16);
    this.base = path.join(opts.cacheDir, id);
    this.files = new FileSource({
      dir: path.join(this.base, 'current', this.subpath),
      allowEmpty: opts.allowEmpty,
      nodeName: opts.nodeName,
      capacity: opts.capacity,
      relistMs: 0,
      watch: false,
      clock: this.clock,
      onWarning: opts.onWarning,
      onError: (err) => this.log.warn('git source: cannot read the checkout', { error: err.message }),
    });
  }

  private get repo(): string {
    return path.join(this.base, 'repo.git');
  }

  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.onChange = onChange;
    this.stopped = false;
    await this.resumeCached();
    // The inner source's own notifications are dropped: sync() notifies once the revision is recorded.
    await this.files.start(() => undefined);
    await this.sync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    await this.files.stop();
  }

  synced(): boolean {
    return this.attempted;
  }

  state(): GitSourceState {
    const s: GitSourceState = { url: maskCredentials(this.opts.url), ref: this.opts.ref ?? 'HEAD', path: this.subpath };
    if (this.revision) s.revision = this.revision;
    if (this.lastError) s.lastError = this.lastError;
    if (this.signature) s.signature = this.signature;
    if (this.lastSyncAt) s.lastSyncAt = this.lastSyncAt;
    return s;
  }

  snapshot(): FileSnapshot {
    const rev = this.revision;
    if (!rev) {
      return { ...nothingYetSnapshot(`${this.name}: no commit applied yet${this.lastError ? ` (${this.lastError.message})` : ''}`), files: [] };
    }
    const inner = this.files.snapshot();
    if (this.stamped?.inner === inner && this.stamped.revision === rev) return this.stamped.out;
    const containers = new Map<string, DesiredContainer>();
    for (const [k, c] of inner.containers) containers.set(k, c.source.kind === 'file' ? { ...c, source: { ...c.source, revision: rev } } : c);
    const out: FileSnapshot = { ...inner, containers };
    this.stamped = { inner, revision: rev, out };
    return out;
  }

  /** Fetches now (SIGHUP, POST /sync): resolves when that sync is done. */
  syncNow(): Promise<void> {
    return this.sync();
  }

  /** A checkout a previous run left (current -> trees/<commit>) is the last good revision until a sync succeeds. */
  private async resumeCached(): Promise<void> {
    const target = await readlink(path.join(this.base, 'current')).catch(() => undefined);
    const commit = target ? path.basename(target) : undefined;
    if (!commit || !/^[0-9a-f]{40,64}$/.test(commit)) return;
    if (this.opts.keyring) {
      const check = await this.driver.verify(this.repo, commit, this.opts.keyring).catch((err: unknown) => ({ ok: false, detail: (err as Error).message }));
      if (!check.ok) return;
      this.signature = check.detail;
    }
    this.revision = commit;
  }

  /** One sync at a time; a request during one runs once more after it. */
  private sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.syncOnce()
      .finally(() => {
        this.running = undefined;
        this.attempted = true;
      })
      .then(() => {
        if (this.again && !this.stopped) {
          this.again = false;
          return this.sync();
        }
        this.schedule();
      });
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = this.failures > 0 ? Math.max(this.opts.intervalMs, this.retryDelay()) : this.opts.intervalMs;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delay);
  }

  private retryDelay(): number {
    return backoffDelay(this.failures, { baseMs: this.opts.backoffBaseMs ?? 1000, maxMs: this.opts.maxBackoffMs ?? 5 * 60_000 });
  }

  private async syncOnce(): Promise<void> {
    if (this.stopped) return;
    try {
      const applied = await this.fetchAndSwap();
      this.failures = 0;
      if (this.lastError) this.log.info(`git: ${this.name} syncs again (commit ${shortHash(applied)})`, { source: this.name, revision: applied });
      this.lastError = undefined;
    } catch (err) {
      this.failures++;
      const message = err instanceof GitSourceError ? err.message : maskCredentials((err as Error).message);
      const keeping = this.revision ? `keeping commit ${shortHash(this.revision)}` : 'no commit applied yet: nothing is created or destroyed';
      const next = this.clock.now() + Math.max(this.opts.intervalMs, this.retryDelay());
      this.lastError = {
        message: `${message}; ${keeping}`,
        time: new Date(this.clock.now()).toISOString(),
        failures: this.failures,
        nextRetryAt: new Date(next).toISOString(),
      };
      this.log.warn(`git: cannot sync ${this.name}: ${message}; ${keeping} (retry in ${Math.round((next - this.clock.now()) / 1000)}s)`, {
        source: this.name,
        ...(this.revision ? { revision: this.revision } : {}),
        failures: this.failures,
      });
      this.onChange?.('all'); // statuses show the error
    } finally {
      this.lastSyncAt = new Date(this.clock.now()).toISOString();
    }
  }

  /** Returns the commit applied (the one already applied when nothing changed). */
  private async fetchAndSwap(): Promise<string> {
    await this.driver.init(this.repo);
    const want = resolveRef(await this.driver.lsRemote(this.opts.url), this.opts.ref, maskCredentials(this.opts.url));
    if (want.commit && want.commit === this.revision) return this.revision;
    const commit = await this.driver.fetch(this.repo, this.opts.url, want.fetch);
    if (commit === this.revision) return commit;
    if (this.opts.keyring) {
      const check = await this.driver.verify(this.repo, commit, this.opts.keyring);
      if (!check.ok) throw new GitSourceError(`commit ${commit} refused by --verify-signatures: ${check.detail}`);
      this.signature = check.detail;
    }
    const trees = path.join(this.base, 'trees');
    const tree = path.join(trees, commit);
    if (!(await exists(tree))) {
      const tmp = path.join(trees, `.tmp-${commit}`);
      await rm(tmp, { recursive: true, force: true });
      await rm(`${tmp}.index`, { force: true });
      try {
        await this.driver.checkout(this.repo, commit, tmp, this.subpath);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw this.subpath ? new GitSourceError(`--path ${this.subpath} is not in commit ${commit}`, { cause: err }) : err;
      }
      await rename(tmp, tree);
    }
    await this.checkRoot(tree, commit);
    const before = this.revision ? this.snapshot().containers : new Map<string, DesiredContainer>();
    // Publish: one rename makes current point at the complete new tree.
    await symlink(path.join('trees', commit), path.join(this.base, 'current.tmp')).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
      await rm(path.join(this.base, 'current.tmp'), { force: true });
      await symlink(path.join('trees', commit), path.join(this.base, 'current.tmp'));
    });
    await rename(path.join(this.base, 'current.tmp'), path.join(this.base, 'current'));
    await this.files.relist({ notify: false });
    const previous = this.revision;
    this.revision = commit;
    const changed = changedKeys(before, this.snapshot().containers);
    this.log.info(
      `git: applied commit ${shortHash(commit)} of ${this.name}${previous ? ` (was ${shortHash(previous)})` : ''}: ${changed.length ? `changed ${changed.join(', ')}` : 'no container changed'}`,
      { source: this.name, revision: commit, ...(previous ? { previousRevision: previous } : {}), changed },
    );
    this.opts.onRevision?.(commit);
    this.onChange?.('all');
    await this.pruneTrees(commit);
    return commit;
  }

  /** The manifest root of the checkout must be a directory inside it (a committed `deploy -> /etc` is refused). */
  private async checkRoot(tree: string, commit: string): Promise<void> {
    const root = path.join(tree, this.subpath);
    const st = await stat(root).catch(() => undefined);
    if (!st?.isDirectory()) throw new GitSourceError(`--path ${this.subpath || '.'} is not a directory in commit ${commit}`);
    if (!isInside(await realpath(root), await realpath(tree)))
      throw new GitSourceError(`--path ${this.subpath} is a symlink leading outside the repository in commit ${commit}: refused, not read`);
  }

  /** Checkouts other than the current one (the FileSource read the new one already). */
  private async pruneTrees(keep: string): Promise<void> {
    const trees = path.join(this.base, 'trees');
    for (const name of await readdir(trees).catch(() => [] as string[])) {
      if (name !== keep) await rm(path.join(trees, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Keys added, removed or whose spec changed between two revisions. */
export function changedKeys(before: Map<string, DesiredContainer>, after: Map<string, DesiredContainer>): string[] {
  const out: string[] = [];
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    const a = before.get(k);
    const b = after.get(k);
    if (!a || !b || hashOf(a.spec) !== hashOf(b.spec)) out.push(k);
  }
  return out.sort();
}
