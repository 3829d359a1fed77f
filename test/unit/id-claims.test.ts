/**
 * The node's claims on id ranges (walls/id-claims.ts): two instances given two records files
 * (ACETATE_ID_RECORDS) on one pool each read only their own records and handed out one range twice;
 * with the node's claims each range is one container's whatever records file its instance uses.
 * Real files, real flocks, in a temp dir standing for /var/lib/acetate.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assignIdRange, recordOwner, releaseIdRanges, readIds, type IdRangeStore } from '../../src/runtime/walls/id-ranges.js';
import { listClaims, readClaim, type IdClaims } from '../../src/runtime/walls/id-claims.js';
import { checkRangeHeld, IdRangeHeldError } from '../../src/runtime/walls/id-range-held.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { releaseIdRecordsLocks } from '../../src/runtime/walls/id-lock.js';
import { forgetFiles } from '../../src/util/json-file.js';
import { withTmpDir } from '../support/tmpdir.js';

const POOL = { hostID: 2_000_000_000, size: RANGE_SIZE * 4 };
const range = (i: number) => ({ hostID: POOL.hostID + i * RANGE_SIZE, size: RANGE_SIZE });

/** An instance: its own state dir and its own records file; the node's claims shared (or none). */
function instance(dir: string, name: string, claims: IdClaims | undefined): IdRangeStore {
  return {
    containersDir: path.join(dir, name, 'containers'),
    recordsFile: path.join(dir, name, 'records', 'node-id-ranges.json'),
    pool: POOL,
    ...(claims ? { claims } : {}),
  };
}

async function container(store: IdRangeStore, id: string): Promise<string> {
  const d = path.join(store.containersDir, id);
  await mkdir(d, { recursive: true });
  return d;
}

const claimsIn = (dir: string): IdClaims => ({ dir: path.join(dir, 'node', 'id-claims'), lockFile: path.join(dir, 'node', 'id-ranges.lock') });

describe("id ranges: the node's claims (instances given different records files)", () => {
  afterEach(() => {
    releaseIdRecordsLocks();
  });

  it('without claims two records files hand out one range twice; with them the ranges are disjoint and each claim names its owner', () =>
    withTmpDir(async (dir) => {
      // The finding, as it was: each instance sees only its own records.
      const [p, q] = [instance(dir, 'p', undefined), instance(dir, 'q', undefined)];
      assert.deepEqual(await assignIdRange(p, await container(p, 'default_web'), true), await assignIdRange(q, await container(q, 'default_web'), true));
      // With the node's claims.
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
        listClaims(claims)
          .map((c) => `${c.hostID} ${path.basename(c.owner.stateDir)}/${c.owner.container}`)
          .sort(),
        [`${range(0).hostID} a/default_x`, `${range(1).hostID} b/default_x`, `${range(2).hostID} a/default_y`, `${range(3).hostID} b/default_y`],
      );
      // Full: a third instance gets none, though its own records are empty.
      const c = instance(dir, 'c', claims);
      await assert.rejects(assignIdRange(c, await container(c, 'default_z'), true), /no free range/);
    }));

  it('a destroy drops its claims; a claim whose owner is gone (a crash) is taken over', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const [a, b] = [instance(dir, 'a', claims), instance(dir, 'b', claims)];
      const ax = await container(a, 'default_x');
      const ra = (await assignIdRange(a, ax, true))!;
      assert.deepEqual(ra, range(0));
      // Destroyed as remove.ts does: the dir goes, then the release.
      const held = await readIds(ax);
      await rm(ax, { recursive: true });
      await releaseIdRanges(a, ax, held);
      assert.equal(readClaim(claims, ra.hostID), undefined, 'the destroy dropped the claim');
      assert.deepEqual(await assignIdRange(b, await container(b, 'default_x'), true), range(0));
      // b's container crashes away (dir gone, no release): its claim is stale and a's next create takes the range.
      await rm(path.join(b.containersDir, 'default_x'), { recursive: true });
      assert.ok(readClaim(claims, range(0).hostID));
      const ay = await container(a, 'default_y');
      assert.deepEqual(await assignIdRange(a, ay, true), range(0));
      assert.equal(readClaim(claims, range(0).hostID)?.container, 'default_y');
      assert.equal(path.resolve(readClaim(claims, range(0).hostID)!.stateDir), path.resolve(dir, 'a'));
    }));

  it("a start whose range another live owner claims is refused, naming the claim; a re-own drops the claim of the files' earlier owner", () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const [a, b] = [instance(dir, 'a', claims), instance(dir, 'b', claims)];
      const ax = await container(a, 'default_x');
      const ra = (await assignIdRange(a, ax, true))!;
      const bx = await container(b, 'default_x');
      const rb = (await assignIdRange(b, bx, true))!;
      await checkRangeHeld(b, bx, rb);
      // b's ids.json rewritten to a's range (the backstop's case): not started.
      await writeFile(path.join(bx, 'ids.json'), JSON.stringify({ base: rb.hostID, size: RANGE_SIZE, range: ra }));
      forgetFiles([path.join(bx, 'ids.json')]); // rewritten in place, as by hand
      const err = await checkRangeHeld(b, bx, ra).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof IdRangeHeldError, String(err));
      assert.match(err.message, new RegExp(`node claim ${path.join(claims.dir, String(ra.hostID)).replace(/[/.]/g, '\\$&')}`));
      await checkRangeHeld(a, ax, ra); // the owner still starts
      // A replace onto the node's ids (hostUsers: true), then the start's re-own: the range's claim goes with it.
      await writeFile(path.join(bx, 'ids.json'), JSON.stringify({ base: rb.hostID, size: RANGE_SIZE, range: rb }));
      forgetFiles([path.join(bx, 'ids.json')]);
      assert.equal(await assignIdRange(b, bx, false), undefined);
      assert.ok(readClaim(claims, rb.hostID), "the files' owner keeps its claim until they are re-owned");
      await recordOwner(bx, 0, RANGE_SIZE, claims);
      assert.equal(readClaim(claims, rb.hostID), undefined);
      assert.deepEqual(
        listClaims(claims).map((c) => c.owner.stateDir),
        [path.resolve(dir, 'a')],
      );
    }));

  it('pools cut on other boundaries: a claim is found by overlap, at allocation and at a start', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const a = instance(dir, 'a', claims);
      const ax = await container(a, 'default_x');
      assert.deepEqual(await assignIdRange(a, ax, true), range(0));
      // Another instance, its pool 1000 ids further: its first range overlaps a's, its second does not.
      const shifted = { ...instance(dir, 's', claims), pool: { hostID: POOL.hostID + 1000, size: RANGE_SIZE * 4 } };
      const sx = await container(shifted, 'default_x');
      const got = (await assignIdRange(shifted, sx, true))!;
      assert.deepEqual(got, { hostID: POOL.hostID + 1000 + RANGE_SIZE, size: RANGE_SIZE });
      // Its ids.json rewritten onto the overlapping range: the start is refused, naming a's claim.
      const overlapping = { hostID: POOL.hostID + 1000, size: RANGE_SIZE };
      await writeFile(path.join(sx, 'ids.json'), JSON.stringify({ base: got.hostID, size: RANGE_SIZE, range: overlapping }));
      forgetFiles([path.join(sx, 'ids.json')]);
      await assert.rejects(
        checkRangeHeld(shifted, sx, overlapping),
        (e: Error) => e instanceof IdRangeHeldError && e.message.includes(`${path.join(claims.dir, String(range(0).hostID))}`),
      );
    }));

  it('a claim that is malformed, a symlink, or in a dir others may write is refused by name, never read as free', () =>
    withTmpDir(async (dir) => {
      const claims = claimsIn(dir);
      const a = instance(dir, 'a', claims);
      await mkdir(claims.dir, { recursive: true, mode: 0o700 });
      await writeFile(path.join(claims.dir, String(range(0).hostID)), 'not json');
      await assert.rejects(assignIdRange(a, await container(a, 'default_x'), true), (e: Error) =>
        e.message.includes(`${path.join(claims.dir, String(range(0).hostID))}: not JSON`),
      );
      await rm(path.join(claims.dir, String(range(0).hostID)));
      const elsewhere = path.join(dir, 'planted.json');
      await writeFile(elsewhere, JSON.stringify({ owner: { stateDir: '/nonexistent', container: 'x' } }));
      await symlink(elsewhere, path.join(claims.dir, String(range(0).hostID)));
      await assert.rejects(assignIdRange(a, path.join(a.containersDir, 'default_x'), true), /is a symlink: refused/);
      await rm(path.join(claims.dir, String(range(0).hostID)));
      await rename(claims.dir, `${claims.dir}.old`);
      await mkdir(claims.dir, { mode: 0o777 });
      await chmod(claims.dir, 0o777);
      await assert.rejects(assignIdRange(a, path.join(a.containersDir, 'default_x'), true), /writable by root only/);
      assert.ok(!existsSync(path.join(claims.dir, String(range(0).hostID))));
      assert.equal(JSON.parse(await readFile(path.join(dir, 'planted.json'), 'utf8')).owner.container, 'x');
    }));
});
