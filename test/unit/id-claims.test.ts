/**
 * The node's claims on id ranges (walls/id-claims.ts): two instances given two records files
 * (ACETATE_ID_RECORDS) on one pool each read only their own records and handed out one range twice;
 * with the node's claims each range is one container's whatever records file its instance uses.
 * Real files, real flocks and real processes, in a temp dir standing for /var/lib/acetate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { assignIdRange, claimExistingRanges, recordOwner, releaseIdRanges, readIds, type IdRangeStore } from '../../src/runtime/walls/id-ranges.js';
import { listClaims, readClaim, type IdClaims } from '../../src/runtime/walls/id-claims.js';
import { claimRangeForStart, IdRangeHeldError } from '../../src/runtime/walls/id-range-held.js';
import { forgetMappedRanges, mappedRanges, readMappedRanges } from '../../src/runtime/walls/mapped-ids.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { idLockSpawns, releaseIdRecordsLocks } from '../../src/runtime/walls/id-lock.js';
import { forgetFiles } from '../../src/util/json-file.js';
import { withTmpDir } from '../support/tmpdir.js';
import { allocationsOf } from '../support/id-alloc-output.js';

const POOL = { hostID: 2_000_000_000, size: RANGE_SIZE * 4 };
const range = (i: number) => ({ hostID: POOL.hostID + i * RANGE_SIZE, size: RANGE_SIZE });

/** An instance: its own state dir and its own records file; the node's claims shared (or none). */
function instance(dir: string, name: string, claims: IdClaims | undefined, pool = POOL): IdRangeStore {
  return {
    containersDir: path.join(dir, name, 'containers'),
    recordsFile: path.join(dir, name, 'records', 'node-id-ranges.json'),
    pool,
    ...(claims ? { claims } : {}),
  };
}

async function container(store: IdRangeStore, id: string): Promise<string> {
  const d = path.join(store.containersDir, id);
  await mkdir(d, { recursive: true });
  return d;
}

const claimsIn = (dir: string): IdClaims => ({ dir: path.join(dir, 'node', 'id-claims'), lockFile: path.join(dir, 'node', 'id-ranges.lock') });
const claimOf = (claims: IdClaims, hostID: number) => {
  const o = readClaim(claims, hostID);
  return o && `${path.basename(o.stateDir)}/${o.container}`;
};
/** ids.json rewritten in place, as by hand (the JSON cache is told). */
async function rewriteIds(dir: string, ids: object): Promise<void> {
  await writeFile(path.join(dir, 'ids.json'), JSON.stringify(ids));
  forgetFiles([path.join(dir, 'ids.json')]);
}

describe("id ranges: the node's claims (instances given different records files)", () => {
  afterEach(() => {
    releaseIdRecordsLocks();
    forgetMappedRanges(); // the allocator keeps a read of /proc for 30 s: not across tests
  });

  it('without claims two records files hand out one range twice; with them the ranges are disjoint and each claim names its owner', () =>
    withTmpDir(async (dir) => {
      // The finding, as it was: each instance sees only its own records.
      const [p, q] = [instance(dir, 'p', undefined), instance(dir, 'q', undefined)];
      assert.deepEqual(await assignIdRange(p, await container(p, 'default_web'), true), await assignIdRange(q, await container(q, 'default_web'), true));
      const claims = claimsIn(dir);
      const [a, b] = [instance(dir, 'a', claims), instance(dir, 'b', claims)];
      const got = [];
      for (const [s, id] of [
        [a, 'default_x'],
        [b, 'default_x'],
        [a, 'default_y'],
        [b, 'default_y'],
      ] as const) {
        got.push((await assignIdRange(s, await container(s, id), true))!.hostID);
      }
      assert.deepEqual(
        got,
        [0, 1, 2, 3].map((i) => range(i).hostID),
      );
      assert.deepEqual(
        [0, 1, 2, 3].map((i) => claimOf(claims, range(i).hostID)),
        ['a/default_x', 'b/default_x', 'a/default_y', 'b/default_y'],
      );
      // Full: a third instance gets none, though its own records are empty.
      const c = instance(dir, 'c', claims);
      await assert.rejects(assignIdRange(c, await container(c, 'default_z'), true), /no free range/);
    }));

  it('two processes with two records files allocating at once never get one range twice', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const worker = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../support/id-alloc-worker.js');
      const run = (name: string) =>
        promisify(execFile)(process.execPath, [
          worker,
          path.join(dir, name, 'records', 'node-id-ranges.json'),
          path.join(dir, name, 'containers'),
          name,
          '15',
          String(POOL.hostID),
          String(RANGE_SIZE * 64),
          claims.dir,
          claims.lockFile,
        ]);
      const outs = await Promise.all([run('a'), run('b')]);
      const got = allocationsOf(outs);
      assert.equal(got.length, 30);
      const starts = got.map((g) => g.range.hostID);
      assert.equal(new Set(starts).size, 30, `a range given twice: ${JSON.stringify(got)}`);
      assert.deepEqual(
        listClaims(claims)
          .map((c) => c.hostID)
          .sort(),
        [...starts].sort(),
      );
    }));

  it("a destroy drops its claims; a crashed owner's claim is passed over, then taken back once the pool looks full", () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const [a, b] = [instance(dir, 'a', claims), instance(dir, 'b', claims)];
      const ax = await container(a, 'default_x');
      assert.deepEqual(await assignIdRange(a, ax, true), range(0));
      // Destroyed as remove.ts does: the dir goes, then the release.
      const held = await readIds(ax);
      await rm(ax, { recursive: true });
      await releaseIdRanges(a, ax, held);
      assert.equal(readClaim(claims, range(0).hostID), undefined, 'the destroy dropped the claim');
      assert.deepEqual(await assignIdRange(b, await container(b, 'default_x'), true), range(0));
      // b's container crashes away (dir gone, no release): its claim stays, stale. So does the temp
      // file of a writer killed mid-write, until the next holder of the node's lock lists the dir.
      await rm(path.join(b.containersDir, 'default_x'), { recursive: true });
      const temp = path.join(claims.dir, `${range(3).hostID}.4242-7-0123abcd.tmp`);
      await writeFile(temp, '{"owner":');
      releaseIdRecordsLocks();
      for (const [i, id] of ['default_p', 'default_q', 'default_r'].entries())
        assert.deepEqual(await assignIdRange(a, await container(a, id), true), range(i + 1));
      assert.equal(claimOf(claims, range(0).hostID), 'b/default_x');
      assert.ok(!existsSync(temp), 'the temp file was swept');
      assert.deepEqual(await assignIdRange(a, await container(a, 'default_s'), true), range(0), 'the pool looked full: the stale claim was removed');
      assert.equal(claimOf(claims, range(0).hostID), 'a/default_s');
    }));

  it("a start whose range another live owner claims is refused without naming that owner; a re-own drops the claim of the files' earlier owner", () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const [a, b] = [instance(dir, 'a', claims), instance(dir, 'b', claims)];
      const ax = await container(a, 'default_x');
      const ra = (await assignIdRange(a, ax, true))!;
      const bx = await container(b, 'default_x');
      const rb = (await assignIdRange(b, bx, true))!;
      await claimRangeForStart(b, bx, rb);
      // b's ids.json rewritten to a's range (the backstop's case): not started.
      await rewriteIds(bx, { base: rb.hostID, size: RANGE_SIZE, range: ra });
      const err = await claimRangeForStart(b, bx, ra).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof IdRangeHeldError, String(err));
      assert.ok(err.message.includes(`node claim ${path.join(claims.dir, String(ra.hostID))}`), err.message);
      assert.ok(!err.message.includes(path.join(dir, 'a')), `the holder's state dir is not shown: ${err.message}`);
      await claimRangeForStart(a, ax, ra); // the owner still starts
      // A replace onto the node's ids (hostUsers: true), then the start's re-own: the range's claim goes with it.
      await rewriteIds(bx, { base: rb.hostID, size: RANGE_SIZE, range: rb });
      assert.equal(await assignIdRange(b, bx, false), undefined);
      assert.equal(claimOf(claims, rb.hostID), 'b/default_x', "the files' owner keeps its claim until they are re-owned");
      await recordOwner(bx, 0, RANGE_SIZE, claims);
      assert.equal(readClaim(claims, rb.hostID), undefined);
      assert.deepEqual(
        listClaims(claims).map((c) => claimOf(claims, c.hostID)),
        ['a/default_x'],
      );
    }));

  it("existing ranges are claimed once per boot, never over another live owner's claim, which stays and refuses the start", () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      // Made by an acetate before claims: ranges in ids.json and in the records only.
      const old = { ...instance(dir, 'old', claims), claims: undefined };
      const x = await container(old, 'default_x');
      const y = await container(old, 'default_y');
      assert.deepEqual(await assignIdRange(old, x, true), range(0));
      assert.deepEqual(await assignIdRange(old, y, true), range(1));
      assert.deepEqual(listClaims(claims), []);
      // Meanwhile another instance (its own records file) was given y's range and claimed it.
      const other = instance(dir, 'other', claims);
      const oz = await container(other, 'default_z');
      assert.deepEqual(await assignIdRange(other, oz, true, range(1)), range(1));
      // The upgraded instance's first apply or run: x claimed; y not (z's live claim stays), so not done.
      const upgraded = instance(dir, 'old', claims);
      const marker = path.join(dir, 'run', 'ids-claimed');
      await mkdir(path.dirname(marker), { recursive: true });
      assert.deepEqual(await claimExistingRanges(upgraded, marker), [`default/y: ids ${range(1).hostID}-${range(1).hostID + RANGE_SIZE - 1}`]);
      assert.ok(!existsSync(marker), 'not done while a range is claimed by another');
      assert.equal(claimOf(claims, range(0).hostID), 'old/default_x');
      assert.equal(claimOf(claims, range(1).hostID), 'other/default_z', "a live owner's claim is not taken over");
      await assert.rejects(claimRangeForStart(upgraded, y, range(1)), IdRangeHeldError);
      // x's own claim is there: its start is a read, no lock (no `flock` process).
      releaseIdRecordsLocks();
      const spawns = idLockSpawns();
      await claimRangeForStart(upgraded, x, range(0));
      assert.equal(idLockSpawns(), spawns);
      // z is destroyed: y's next start claims its range (a loop that tried once would have started it unclaimed),
      // and the next apply or run is done.
      const held = await readIds(oz);
      await rm(oz, { recursive: true });
      await releaseIdRanges(other, oz, held);
      await claimRangeForStart(upgraded, y, range(1));
      assert.equal(claimOf(claims, range(1).hostID), 'old/default_y');
      assert.deepEqual(await claimExistingRanges(upgraded, marker), []);
      assert.ok(existsSync(marker));
      // Once per boot: with the marker, nothing is read again (a claim removed by hand stays removed).
      await rm(path.join(claims.dir, String(range(0).hostID)));
      await claimExistingRanges(upgraded, marker);
      assert.equal(readClaim(claims, range(0).hostID), undefined);
    }));

  it('a range a live process runs with is never given out nor its claim removed as stale, whatever records and claims say', () =>
    withTmpDir(async (dir) => {
      // A real process in a user namespace mapped onto range 0 (as a container of another instance,
      // made before claims, runs): root writes its uid_map, as runc does.
      const { spawn } = await import('node:child_process');
      const child = spawn('unshare', ['--user', 'sleep', '30'], { stdio: 'ignore' });
      try {
        const { readlink } = await import('node:fs/promises');
        const ours = await readlink('/proc/self/ns/user');
        for (let i = 0; i < 100 && (await readlink(`/proc/${child.pid}/ns/user`).catch(() => ours)) === ours; i++) await new Promise((r) => setTimeout(r, 20));
        await writeFile(`/proc/${child.pid}/uid_map`, `0 ${range(0).hostID} ${RANGE_SIZE}`);
        assert.ok(readMappedRanges().some((m) => m.hostID === range(0).hostID && m.size === RANGE_SIZE));
        forgetMappedRanges(); // the allocator's last read (kept 30 s) is older than this process
        const claims = claimsIn(dir);
        const a = instance(dir, 'a', claims);
        assert.deepEqual(await assignIdRange(a, await container(a, 'default_x'), true), range(1), 'range 0 passed over: a process runs with it');
        // A stale-looking claim on range 0 (its owner's dir gone) is kept while the process runs.
        await mkdir(claims.dir, { recursive: true, mode: 0o700 });
        await writeFile(
          path.join(claims.dir, String(range(0).hostID)),
          JSON.stringify({ owner: { stateDir: path.join(dir, 'moved'), container: 'default_p' } }),
          { mode: 0o600 },
        );
        for (const id of ['default_y', 'default_z']) await assignIdRange(a, await container(a, id), true);
        await assert.rejects(assignIdRange(a, await container(a, 'default_w'), true), /no free range/);
        assert.equal(claimOf(claims, range(0).hostID), 'moved/default_p');
        // A container of this instance whose ids.json names range 0 and no claim of its own (made
        // before claims): its start is refused while the process runs with it.
        await rm(path.join(claims.dir, String(range(0).hostID)));
        const p = await container(a, 'default_p');
        await rewriteIds(p, { base: 0, size: RANGE_SIZE, range: range(0) });
        await assert.rejects(claimRangeForStart(a, p, range(0)), (e: Error) => e instanceof IdRangeHeldError && /a live process runs with it/.test(e.message));
        // Nor does the claim of existing ranges (an upgrade's first apply) claim it for p: a conflict,
        // and no marker. Were the process p's own (its init's pid in p's run dir), it would be claimed.
        const store = { ...a, runContainersDir: path.join(dir, 'a-run') };
        const marker = path.join(dir, 'a-run', 'ids-claimed');
        await mkdir(path.join(dir, 'a-run', 'default_p'), { recursive: true });
        assert.deepEqual(await claimExistingRanges(store, marker), [`default/p: ids ${range(0).hostID}-${range(0).hostID + RANGE_SIZE - 1}`]);
        assert.equal(readClaim(claims, range(0).hostID), undefined);
        await writeFile(path.join(dir, 'a-run', 'default_p', 'pid'), String(child.pid));
        assert.deepEqual(await claimExistingRanges(store, marker), []);
        assert.equal(claimOf(claims, range(0).hostID), 'a/default_p');
        // The process ends: a start no longer refused, though the last read (kept 30 s) still
        // shows it (read anew before a refusal).
        await rm(path.join(claims.dir, String(range(0).hostID)));
        await rm(path.join(dir, 'a-run', 'default_p', 'pid'));
        assert.ok(
          mappedRanges().some((m) => m.hostID === range(0).hostID),
          'the last read shows the process',
        );
        child.kill('SIGKILL');
        await once(child, 'exit');
        await claimRangeForStart(a, p, range(0));
        assert.equal(claimOf(claims, range(0).hostID), 'a/default_p');
      } finally {
        child.kill('SIGKILL');
        if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      }
    }));

  it('pools cut on other boundaries: a claim is found by overlap, at allocation and at a start, and a crashed one is taken back', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const a = instance(dir, 'a', claims);
      const ax = await container(a, 'default_x');
      assert.deepEqual(await assignIdRange(a, ax, true), range(0));
      // Another instance, its pool 1000 ids further: its first range overlaps a's, its second does not.
      const shifted = instance(dir, 's', claims, { hostID: POOL.hostID + 1000, size: RANGE_SIZE * 4 });
      const sx = await container(shifted, 'default_x');
      const got = (await assignIdRange(shifted, sx, true))!;
      assert.deepEqual(got, { hostID: POOL.hostID + 1000 + RANGE_SIZE, size: RANGE_SIZE });
      // Its ids.json rewritten onto the overlapping range: the start is refused, naming a's claim.
      const overlapping = { hostID: POOL.hostID + 1000, size: RANGE_SIZE };
      await rewriteIds(sx, { base: got.hostID, size: RANGE_SIZE, range: overlapping });
      await assert.rejects(
        claimRangeForStart(shifted, sx, overlapping),
        (e: Error) => e instanceof IdRangeHeldError && e.message.includes(path.join(claims.dir, String(range(0).hostID))),
      );
      // shifted's container crashes away; a fills its pool: the stale claim on the other boundary
      // (overlapping a's ranges 1 and 2) is removed when the pool looks full, and both are given.
      await rm(sx, { recursive: true });
      const more = [];
      for (const id of ['default_p', 'default_q', 'default_r']) more.push((await assignIdRange(a, await container(a, id), true))?.hostID);
      assert.deepEqual(
        more.sort(),
        [1, 2, 3].map((i) => range(i).hostID),
      );
      assert.equal(readClaim(claims, got.hostID), undefined);
    }));

  it('a claim names the state dir it was written for: a path made a symlink to a copy since is another owner', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const s1 = instance(dir, 's1', claims);
      const x = await container(s1, 'default_x');
      assert.deepEqual(await assignIdRange(s1, x, true), range(0));
      // Copied, the old dir moved aside (its container keeps running), the old path pointed at the copy.
      await promisify(execFile)('cp', ['-a', path.join(dir, 's1'), path.join(dir, 's1new')]);
      await rename(path.join(dir, 's1'), path.join(dir, 's1old'));
      await symlink(path.join(dir, 's1new'), path.join(dir, 's1'));
      const copy = { ...instance(dir, 's1', claims), recordsFile: path.join(dir, 'copy-records', 'r.json') };
      await assert.rejects(claimRangeForStart(copy, path.join(copy.containersDir, 'default_x'), range(0)), IdRangeHeldError);
    }));

  it('a claim that is malformed or a symlink is passed over, never read as free, and refused by name when read; in a dir others may write, nothing is claimed or given', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const a = instance(dir, 'a', claims);
      await mkdir(claims.dir, { recursive: true, mode: 0o700 });
      const first = path.join(claims.dir, String(range(0).hostID));
      await writeFile(first, 'not json {"secret": 1}');
      for (const [i, id] of ['default_x', 'default_y', 'default_z'].entries())
        assert.deepEqual(await assignIdRange(a, await container(a, id), true), range(i + 1));
      // The pool looks full: the claim is read to see whether it is stale, and refused by name.
      const w = await container(a, 'default_w');
      await assert.rejects(assignIdRange(a, w, true), (e: Error) => e.message.includes(`${first}: not JSON`) && !e.message.includes('secret'));
      await rm(first);
      const elsewhere = path.join(dir, 'planted.json');
      await writeFile(elsewhere, JSON.stringify({ owner: { stateDir: '/nonexistent', container: 'x' } }));
      await symlink(elsewhere, first);
      await assert.rejects(assignIdRange(a, w, true), /is a symlink: refused/);
      assert.equal(JSON.parse(await readFile(elsewhere, 'utf8')).owner.container, 'x');
      await rename(claims.dir, `${claims.dir}.old`);
      await mkdir(claims.dir);
      await chmod(claims.dir, 0o777);
      await assert.rejects(assignIdRange(a, w, true), /writable by root only/);
      assert.ok(!existsSync(first));
      assert.equal((await readIds(w))?.range, undefined, 'ids.json names no range its claim could not be written for');
    }));
});
