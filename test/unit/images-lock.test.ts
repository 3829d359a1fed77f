/**
 * The images lock with the real flock(2) (util-linux `flock`): users overlapping in one process
 * share one hold, released when the last leaves; `image rm|prune` (exclusive) waits for them, up
 * to its bound, and users wait for it; nesting within one call chain; nothing on disk until a
 * writer takes it. Two ImagesLock objects on one dir lock as two processes would (flock(2) is per
 * open file).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImagesLock, ImagesLockTimeoutError } from '../../src/images/images-lock.js';
import { waitFor } from '../support/wait.js';

/** Whether another process could take the file exclusive now (flock -n, as `image prune` first tries). */
function freeForOthers(file: string): boolean {
  return spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status === 0;
}

/** flock(2) locks on the file's inode, as /proc/locks lists them (granted ones, not waiters). */
async function locksOn(file: string): Promise<string[]> {
  const ino = (await stat(file)).ino;
  return (await readFile('/proc/locks', 'utf8')).split('\n').filter((l) => / FLOCK /.test(l) && !/->/.test(l) && l.includes(`:${ino} `));
}

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { open, wait };
}

/** A user of `lock` in flight until open(): once it holds the lock; `events` gets `name` when it is done. */
async function userInFlight(lock: ImagesLock, name: string, events: string[] = []): Promise<{ open: () => void; done: Promise<void> }> {
  const g = gate();
  const done = lock.shared(async () => {
    await g.wait;
    events.push(name);
  });
  await waitFor(`${name} to hold the lock`, () => !freeForOthers(lock.file));
  return { open: g.open, done };
}

/** The real flock, through a wrapper that counts its runs (one per hold taken). */
async function countingFlock(dir: string): Promise<{ flockPath: string; runs: () => Promise<number> }> {
  const flockPath = path.join(dir, 'flock-counting');
  const count = path.join(dir, 'flock-runs');
  await writeFile(flockPath, `#!/bin/sh\necho >> ${count}\nexec flock "$@"\n`);
  await chmod(flockPath, 0o755);
  return { flockPath, runs: async () => (await readFile(count, 'utf8').catch(() => '')).length };
}

describe('images lock (real flock)', function () {
  this.timeout(30_000);
  let dir: string;
  let imagesDir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-imglock-'));
    imagesDir = path.join(dir, 'images');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes nothing until taken; overlapping users share one hold, released when the last one leaves', async () => {
    const lock = new ImagesLock(imagesDir);
    assert.deepEqual(await readdir(dir), [], 'a constructed lock made no dir');
    const a = gate();
    const b = gate();
    const inA = lock.shared(() => a.wait);
    const inB = lock.shared(() => b.wait);
    await waitFor('the users to hold the lock', () => !freeForOthers(lock.file));
    assert.equal((await locksOn(lock.file)).length, 1, 'two users, one flock');
    a.open();
    await inA;
    assert.equal(freeForOthers(lock.file), false, 'still held while B is in');
    b.open();
    await inB;
    assert.equal(freeForOthers(lock.file), true, 'released when the last user left');
    assert.deepEqual(await locksOn(lock.file), []);
    // A later user takes it again.
    await lock.shared(async () => assert.equal(freeForOthers(lock.file), false));
  });

  it('exclusive waits for the users in flight (saying so), then runs; a user waits for it', async () => {
    const users = new ImagesLock(imagesDir);
    const events: string[] = [];
    const user = await userInFlight(users, 'create done', events);
    const pruner = new ImagesLock(imagesDir); // as `acetate image prune`, another process
    const pruning = gate();
    let waited: string | undefined;
    const prune = pruner.exclusive(
      async () => {
        events.push('prune runs');
        await pruning.wait;
        events.push('prune done');
      },
      { onWait: (f) => (waited = f) },
    );
    await waitFor('the prune to wait', () => waited);
    assert.equal(waited, users.file);
    assert.equal(events.length, 0, 'the prune waits for the user');
    user.open();
    await user.done;
    await waitFor('the prune to run', () => events.includes('prune runs'));
    // Now a user of another process (another lock object) waits for the prune.
    let userWaited = false;
    const next = new ImagesLock(imagesDir, { onSharedWait: () => (userWaited = true) }).shared(async () => {
      events.push('next create');
    });
    await waitFor('the next user to wait', () => userWaited);
    pruning.open();
    await Promise.all([prune, next]);
    assert.deepEqual(events, ['create done', 'prune runs', 'prune done', 'next create']);
  });

  it('exclusive gives up after its bound, naming the image users, without running', async () => {
    const user = await userInFlight(new ImagesLock(imagesDir), 'the user');
    let ran = false;
    await assert.rejects(
      new ImagesLock(imagesDir, { exclusiveWaitMs: 300 }).exclusive(async () => {
        ran = true;
      }),
      (err: Error) =>
        err instanceof ImagesLockTimeoutError &&
        /image users \(containers being created from images, pulls, imports\) held .* for 0 s: nothing was removed/.test(err.message),
    );
    assert.equal(ran, false);
    user.open();
    await user.done;
  });

  it('kept between users (the node lock holder): one flock for many users; a prune waiting gets it while idle, the next user takes it again', async () => {
    const flock = await countingFlock(dir);
    const lock = new ImagesLock(imagesDir, { flockPath: flock.flockPath });
    lock.keepBetweenUsers();
    for (let i = 0; i < 5; i++) await lock.shared(async () => undefined);
    assert.equal(freeForOthers(lock.file), false, 'kept after its users left');
    assert.equal(await flock.runs(), 1, 'one flock for five users');
    const events: string[] = [];
    const prune = new ImagesLock(imagesDir).exclusive(async () => {
      events.push('prune');
    });
    await prune; // the idle hold is let go for it (want file, idle check)
    await lock.shared(async () => {
      events.push('user');
    });
    assert.deepEqual(events, ['prune', 'user']);
    assert.equal(await flock.runs(), 2, 'taken again once, after the prune');
    assert.deepEqual(
      (await readdir(imagesDir)).filter((n) => n.startsWith('acetate-images.want-')),
      [],
      'the prune removed its want file',
    );
    lock.stopKeeping();
    assert.equal(freeForOthers(lock.file), true);
  });

  it('kept between users: a waiting prune goes before a user that comes after it, even while others are in flight; a dead prune wants nothing', async () => {
    const lock = new ImagesLock(imagesDir);
    lock.keepBetweenUsers();
    const events: string[] = [];
    const userA = await userInFlight(lock, 'A', events);
    let waiting = false;
    const prune = new ImagesLock(imagesDir).exclusive(
      async () => {
        events.push('prune');
      },
      { onWait: () => (waiting = true) },
    );
    await waitFor('the prune to wait', () => waiting);
    // B comes while A is in flight: flock(2) alone would let it share A's lock, ahead of the prune.
    const userB = lock.shared(async () => {
      events.push('B');
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(events.length, 0, 'B waits');
    userA.open();
    await Promise.all([userA.done, prune, userB]);
    assert.deepEqual(events, ['A', 'prune', 'B']);
    // The want file of a prune that was killed (a pid that is gone) makes no one let go.
    const dead = spawnSync('true').pid;
    await writeFile(path.join(imagesDir, `acetate-images.want-${dead}`), '');
    await lock.shared(async () => undefined);
    assert.equal(freeForOthers(lock.file), false, 'still kept');
    lock.stopKeeping();
    assert.equal(freeForOthers(lock.file), true);
  });

  it('kept between users: a user held back for a prune goes on when the prune gives up', async () => {
    const lock = new ImagesLock(imagesDir);
    lock.keepBetweenUsers();
    const userA = await userInFlight(lock, 'A');
    let waiting = false;
    const prune = new ImagesLock(imagesDir, { exclusiveWaitMs: 400 }).exclusive(async () => undefined, { onWait: () => (waiting = true) });
    await waitFor('the prune to wait', () => waiting);
    let bRan = false;
    const userB = lock.shared(async () => {
      bRan = true;
    });
    await assert.rejects(prune, ImagesLockTimeoutError);
    await userB; // while A is still in flight
    assert.ok(bRan);
    userA.open();
    await userA.done;
    lock.stopKeeping();
    assert.equal(freeForOthers(lock.file), true);
  });

  it('nests within one call chain: shared and exclusive inside exclusive run at once; exclusive inside shared is refused', async () => {
    const lock = new ImagesLock(imagesDir, { exclusiveWaitMs: 1_000, sharedWaitMs: 1_000 });
    const seen = await lock.exclusive(async () => {
      const inner = await lock.exclusive(async () => 'exclusive in exclusive');
      const shared = await lock.shared(async () => 'shared in exclusive');
      return [inner, shared];
    });
    assert.deepEqual(seen, ['exclusive in exclusive', 'shared in exclusive']);
    await assert.rejects(
      lock.shared(() => lock.exclusive(async () => undefined)),
      /asked exclusive while this call holds it shared/,
    );
    assert.equal(freeForOthers(lock.file), true, 'all released');
  });
});
