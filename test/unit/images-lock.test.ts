/**
 * The images lock with the real flock(2) (util-linux `flock`): users overlapping in one process
 * share one hold, released when the last leaves; `image rm|prune` (exclusive) waits for them, up
 * to its bound, and users wait for it; nesting within one call chain; nothing on disk until a
 * writer takes it. Two ImagesLock objects on one dir lock as two processes would (flock(2) is per
 * open file).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImagesLock, ImagesLockTimeoutError } from '../../src/images/images-lock.js';
import { readProcStat } from '../../src/util/processes.js';
import { flocksOn, freeForOthers } from '../support/flock-locks.js';
import { waitFor } from '../support/wait.js';

function gate(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { open, wait };
}

/** A user of `lock` in flight until open(): once it holds the lock; `events` gets `name` when it is done. */
async function userInFlight(lock: ImagesLock, name: string, events: string[] = []): Promise<{ open: () => void; done: Promise<void>; file: string }> {
  const g = gate();
  const done = lock.shared(async () => {
    await g.wait;
    events.push(name);
  });
  await waitFor(`${name} to hold the lock`, () => !freeForOthers(lock.file));
  return { open: g.open, done, file: lock.file };
}

/** A prune of another process (another lock object), once it waits for the users in flight: `events` gets 'prune' when it runs. */
async function waitingPrune(imagesDir: string, events: string[]): Promise<{ done: Promise<void> }> {
  let waiting = false;
  const done = new ImagesLock(imagesDir).exclusive(
    async () => {
      events.push('prune');
    },
    { onWait: () => (waiting = true) },
  );
  await waitFor('the prune to wait', () => waiting);
  return { done };
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
    assert.equal((await flocksOn(lock.file)).granted.length, 1, 'two users, one flock');
    a.open();
    await inA;
    assert.equal(freeForOthers(lock.file), false, 'still held while B is in');
    b.open();
    await inB;
    assert.equal(freeForOthers(lock.file), true, 'released when the last user left');
    assert.deepEqual((await flocksOn(lock.file)).granted, []);
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
    const prune = await waitingPrune(imagesDir, events);
    // B comes while A is in flight: flock(2) alone would let it share A's lock, ahead of the prune.
    const userB = lock.shared(async () => {
      events.push('B');
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(events.length, 0, 'B waits');
    userA.open();
    await Promise.all([userA.done, prune.done, userB]);
    assert.deepEqual(events, ['A', 'prune', 'B']);
    // The want file of a prune that was killed (a pid that is gone) makes no one let go.
    const dead = spawnSync('true').pid;
    await writeFile(path.join(imagesDir, `acetate-images.want-${dead}-1`), '');
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

  it('a process with no hold does not take one ahead of a prune that waits for another process (flock(2) would let it share that lock)', async () => {
    const events: string[] = [];
    const other = await userInFlight(new ImagesLock(imagesDir), 'A', events); // a pull of another process
    const prune = await waitingPrune(imagesDir, events);
    let heldBack = false;
    const user = new ImagesLock(imagesDir, { onSharedWait: () => (heldBack = true) }).shared(async () => {
      events.push('B');
    });
    await waitFor('B to be held back, or to run', () => heldBack || events.includes('B'));
    assert.deepEqual(events, [], 'B waits for the prune');
    other.open();
    await Promise.all([other.done, prune.done, user]);
    assert.deepEqual(events, ['A', 'prune', 'B']);
  });

  it('a want file counts only for the live process that wrote it: a reused pid (another start time, or the older name with none) wants nothing', async () => {
    const lock = new ImagesLock(imagesDir);
    lock.keepBetweenUsers();
    await lock.shared(async () => undefined);
    const start = (await readProcStat(process.pid))!.startTime;
    // This process lives and is no prune: as a process that got the pid of a killed prune.
    for (const n of [`${process.pid}`, `${process.pid}-${start + 1}`]) await writeFile(path.join(imagesDir, `acetate-images.want-${n}`), '');
    await lock.shared(async () => undefined);
    assert.equal(freeForOthers(lock.file), false, 'the hold is kept');
    let heldBack = false;
    await new ImagesLock(imagesDir, { onSharedWait: () => (heldBack = true) }).shared(async () => undefined);
    assert.equal(heldBack, false, 'a process with no hold takes one at once');
    // The pid with its own start time: a prune that waits. The idle hold is let go for it.
    await writeFile(path.join(imagesDir, `acetate-images.want-${process.pid}-${start}`), '');
    await waitFor('the idle hold to be let go', () => freeForOthers(lock.file));
    lock.stopKeeping();
  });

  it('a prune interrupted (SIGINT) while it waits removes its want file and dies of the signal, as without the lock', async () => {
    const user = await userInFlight(new ImagesLock(imagesDir), 'A');
    const mod = new URL('../../src/images/images-lock.js', import.meta.url).href;
    const script = `const { ImagesLock } = await import(${JSON.stringify(mod)}); await new ImagesLock(${JSON.stringify(imagesDir)}).exclusive(async () => undefined);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const exited = new Promise<string | number | null>((r) => child.once('exit', (code, signal) => r(signal ?? code)));
    const wants = async (): Promise<string[]> => (await readdir(imagesDir)).filter((n) => n.startsWith('acetate-images.want-'));
    await waitFor('the prune to wait (its want file)', async () => (await wants()).length > 0);
    child.kill('SIGINT');
    assert.equal(await exited, 'SIGINT');
    assert.deepEqual(await wants(), [], 'no want file left');
    user.open();
    await user.done;
    // Its flock, left waiting, gets the lock once the user is gone, and exits.
    await waitFor('no flock left on the file', async () => {
      const l = await flocksOn(user.file);
      return l.granted.length === 0 && l.waiting.length === 0;
    });
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
