import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assignIdRange, idsFileOf, importIdRecords, rangesHeldElsewhere, readIds, recordOwner, type IdRangeStore } from '../../src/runtime/walls/id-ranges.js';
import { formatIdRange, lowestFreeRange, RANGE_SIZE, rangeInPool, rangesOverlap } from '../../src/runtime/walls/id-pool.js';
import { releaseIdRecordsLocks } from '../../src/runtime/walls/id-lock.js';
import { journalOf, readIdRecords } from '../../src/runtime/walls/id-records.js';
import { forgetFiles } from '../../src/util/json-file.js';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import type { ActualContainer, UserNamespaceFacts } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';
import { withTmpDir } from '../support/tmpdir.js';
import { allocationsOf } from '../support/id-alloc-output.js';

const POOL = { hostID: 1_000_000_000, size: RANGE_SIZE * 4 };
const range = (i: number, pool = POOL) => ({ hostID: pool.hostID + i * RANGE_SIZE, size: RANGE_SIZE });

function storeIn(dir: string, pool = POOL): IdRangeStore {
  return { containersDir: path.join(dir, 'containers'), recordsFile: path.join(dir, 'node-id-ranges.json'), pool };
}

async function container(store: IdRangeStore, id: string): Promise<string> {
  const d = path.join(store.containersDir, id);
  await mkdir(d, { recursive: true });
  return d;
}

describe('id pool (pure)', () => {
  it('takes the lowest range no one holds, on the pool boundaries, and none when full', () => {
    assert.deepEqual(lowestFreeRange(POOL, []), range(0));
    assert.deepEqual(lowestFreeRange(POOL, [range(0), range(2)]), range(1));
    // An odd range (acetate's earlier shared one, anywhere) blocks every boundary range it touches.
    assert.deepEqual(lowestFreeRange(POOL, [{ hostID: POOL.hostID + 10, size: RANGE_SIZE }]), range(2));
    assert.equal(
      lowestFreeRange(
        POOL,
        [0, 1, 2, 3].map((i) => range(i)),
      ),
      undefined,
    );
    assert.ok(rangeInPool(range(3), POOL));
    assert.ok(!rangeInPool(range(4), POOL), 'past the end');
    assert.ok(!rangeInPool({ hostID: POOL.hostID + 1, size: RANGE_SIZE }, POOL), 'off a boundary');
    assert.ok(rangesOverlap(range(1), { hostID: range(1).hostID + RANGE_SIZE - 1, size: 1 }));
    assert.ok(!rangesOverlap(range(1), range(2)));
    assert.equal(formatIdRange(range(1)), '1000065536-1000131071');
  });
});

describe('id ranges (allocated per container, recorded in ids.json)', () => {
  it('gives containers disjoint ranges, keeps a range across re-creates, frees it with the dir and reuses it', () =>
    withTmpDir(async (dir) => {
      const store = storeIn(dir);
      const a = await container(store, 'default_a');
      const b = await container(store, 'default_b');
      const ra = await assignIdRange(store, a, true);
      const rb = await assignIdRange(store, b, true);
      assert.deepEqual([ra, rb], [range(0), range(1)]);
      // Persisted: the record is a file of the container, read again from disk.
      forgetFiles([idsFileOf(a)]);
      assert.deepEqual(JSON.parse(await readFile(idsFileOf(a), 'utf8')).range, range(0));
      assert.deepEqual(await assignIdRange(store, a, true), range(0), 'a re-create keeps its range');
      // Destroy = the container dir goes: its range is free and the next container gets it.
      await rm(a, { recursive: true });
      const c = await container(store, 'default_c');
      assert.deepEqual(await assignIdRange(store, c, true), range(0));
      // hostUsers: true drops the range; the files' owner stays recorded until the start re-owns them.
      await recordOwner(b, range(1).hostID, RANGE_SIZE);
      assert.equal(await assignIdRange(store, b, false), undefined);
      assert.deepEqual(await readIds(b), { base: range(1).hostID, size: RANGE_SIZE });
      const d = await container(store, 'default_d');
      assert.deepEqual(await assignIdRange(store, d, true), range(2), "b's files still own range 1: not given out");
    }));

  it('takes the range plan announced while it is free, and moves a range outside the pool or shared', () =>
    withTmpDir(async (dir) => {
      const store = storeIn(dir);
      const a = await container(store, 'default_a');
      assert.deepEqual(await assignIdRange(store, a, true, range(3)), range(3));
      const b = await container(store, 'default_b');
      assert.deepEqual(await assignIdRange(store, b, true, range(3)), range(0), 'announced range taken meanwhile: the lowest free');
      // The pool moved: a's range is outside it; a re-create gives one of the new pool.
      const moved = storeIn(dir, { hostID: 1_200_000_000, size: RANGE_SIZE * 2 });
      assert.deepEqual(await assignIdRange(moved, a, true), { hostID: 1_200_000_000, size: RANGE_SIZE });
      // Two containers on one range (acetate's earlier shared range: base only in ids.json).
      const e = await container(store, 'default_e');
      await recordOwner(e, range(0).hostID, RANGE_SIZE);
      assert.deepEqual(await assignIdRange(store, e, true), range(1), 'b holds range 0 too: e gets its own');
    }));

  it('never gives one range twice to concurrent allocations', () =>
    withTmpDir(async (dir) => {
      const store = storeIn(dir, { hostID: 1_000_000_000, size: RANGE_SIZE * 16 });
      const dirs = await Promise.all(Array.from({ length: 12 }, (_, i) => container(store, `default_c${i}`)));
      const got = await Promise.all(dirs.map((d) => assignIdRange(store, d, true)));
      assert.equal(new Set(got.map((r) => r!.hostID)).size, 12, JSON.stringify(got));
      const full = await Promise.all(Array.from({ length: 5 }, (_, i) => container(store, `default_f${i}`)));
      const res = await Promise.allSettled(full.map((d) => assignIdRange(store, d, true)));
      assert.equal(res.filter((r) => r.status === 'fulfilled').length, 4);
      const refused = res.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.match(String(refused.reason), /no free range of 65536 ids left in the pool .* widen --userns-pool/);
    }));
});

describe('plan: user namespace mapping changes', () => {
  const facts = (hostUsersDefault: boolean, pool = POOL): UserNamespaceFacts => ({ hostUsersDefault, pool });
  const withRange = (a: ActualContainer, r: { hostID: number; size: number }): ActualContainer => ({ ...a, idRange: r });

  it('a default change is a named replace: node root → ids, and back', () => {
    const d = desired('web');
    const old = actualFrom(d); // created when containers got the node's ids
    const p = plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, old]]), complete: true, userNamespaces: facts(false) });
    assert.equal(p.actions.length, 1);
    const r = p.actions[0]!;
    assert.equal(r.kind, 'replace');
    assert.match(renderPlan(p), /-\/\+ replace\s+default\/web\s+user namespace: node root → ids 1000000000–1000065535, the private area's files are re-owned/);
    assert.deepEqual(r.kind === 'replace' && r.idRange, range(0));
    assert.equal(r.kind === 'replace' && r.desired.spec.security.hostUsers, false, 'the record will hold the choice');
    // Applied: converged under the same default; the default going back is the reverse replace.
    const now = withRange(actualFrom(r.desired), range(0));
    assert.deepEqual(plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, now]]), complete: true, userNamespaces: facts(false) }).actions, []);
    const back = plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, now]]), complete: true, userNamespaces: facts(true) });
    assert.match(renderPlan(back), /replace\s+default\/web\s+user namespace: ids 1000000000–1000065535 → node root/);
    // hostUsers: true said by the container: no change whatever the default.
    const pinned = desired('web', { securityContext: { hostUsers: true } });
    assert.deepEqual(plan({ desired: new Map([[d.key, pinned]]), actual: new Map([[d.key, old]]), complete: true, userNamespaces: facts(false) }).actions, []);
  });

  it('a range outside the pool, or held by two containers, is a replace naming both ranges; creates get disjoint ranges', () => {
    const a = desired('a', { securityContext: { hostUsers: false } });
    const b = desired('b', { securityContext: { hostUsers: false } });
    const c = desired('c', { securityContext: { hostUsers: false } });
    const actual = new Map([
      [a.key, withRange(actualFrom(a), range(0))],
      [b.key, withRange(actualFrom(b), range(0))],
    ]);
    const p = plan({
      desired: new Map([
        [a.key, a],
        [b.key, b],
        [c.key, c],
      ]),
      actual,
      complete: true,
      userNamespaces: facts(false),
    });
    const text = renderPlan(p);
    assert.doesNotMatch(text, /default\/a/, 'the first holder keeps it');
    assert.match(text, /replace\s+default\/b\s+user namespace: ids 1000000000–1000065535 \(held by another container too\) → ids 1000065536–1000131071/);
    assert.match(text, /create\s+default\/c.*user namespace: root is node ids 1000131072–1000196607/);
    const moved = plan({
      desired: new Map([[a.key, a]]),
      actual: new Map([[a.key, actual.get(a.key)!]]),
      complete: true,
      userNamespaces: facts(false, { hostID: 1_200_000_000, size: RANGE_SIZE * 2 }),
    });
    assert.match(renderPlan(moved), /ids 1000000000–1000065535 \(outside the pool 1200000000–1200131071\) → ids 1200000000–1200065535/);
  });

  it('among many containers, each one whose range one of a smaller name holds too moves, and only those', () => {
    // By start: e and a hold range 0, z 1, m and b 3, k and q 5, n 10: three shared ranges among others.
    const at: Record<string, number> = { e: 0, a: 0, z: 1, m: 3, b: 3, k: 5, q: 5, n: 10 };
    const specs = Object.keys(at).map((name) => desired(name, { securityContext: { hostUsers: false } }));
    const p = plan({
      desired: new Map(specs.map((d) => [d.key, d])),
      actual: new Map(specs.map((d) => [d.key, withRange(actualFrom(d), range(at[d.name]!))])),
      complete: true,
      userNamespaces: facts(false, { hostID: POOL.hostID, size: RANGE_SIZE * 16 }),
    });
    // The first holder by name keeps a shared range: a (not e), b (not m), k (not q).
    assert.deepEqual(p.actions.map((x) => x.key).sort(), ['default/e', 'default/m', 'default/q'], renderPlan(p));
    assert.match(renderPlan(p), /replace\s+default\/q\s+user namespace: ids 1000327680–1000393215 \(held by another container too\)/);
  });

  it('without facts (a runtime without user namespaces) an absent hostUsers stays the node ids', () => {
    const d = desired('web');
    assert.deepEqual(plan({ desired: new Map([[d.key, d]]), actual: new Map([[d.key, actualFrom(d)]]), complete: true }).actions, []);
  });
});

describe('node-wide id records (two instances, one records file)', () => {
  /** Instance `name`'s store in dir, every instance sharing dir/node-id-ranges.json. */
  const instance = (dir: string, name: string, pool = POOL): IdRangeStore => ({
    containersDir: path.join(dir, name, 'containers'),
    recordsFile: path.join(dir, 'node-id-ranges.json'),
    pool,
  });

  it('two state dirs get disjoint ranges; each record names its owner; a gone owner gives its range back', () =>
    withTmpDir(async (dir) => {
      const a = instance(dir, 'a');
      const b = instance(dir, 'b');
      const a1 = await container(a, 'default_web');
      const b1 = await container(b, 'default_web');
      const b2 = await container(b, 'default_db');
      assert.deepEqual(await assignIdRange(a, a1, true), range(0));
      assert.deepEqual(await assignIdRange(b, b1, true), range(1), "a's range is held: b takes the next");
      assert.deepEqual(await assignIdRange(b, b2, true), range(2));
      // The allocations went to the records' journal; letting go of the lock folds it into the file.
      assert.ok(existsSync(journalOf(a.recordsFile)));
      releaseIdRecordsLocks();
      assert.ok(!existsSync(journalOf(a.recordsFile)));
      const file = JSON.parse(await readFile(a.recordsFile, 'utf8')) as { records: { owner: { stateDir: string; container: string }; ranges: unknown[] }[] };
      assert.deepEqual(
        file.records.map((r) => [path.basename(r.owner.stateDir), r.owner.container, r.ranges]).sort(),
        [
          ['a', 'default_web', [range(0)]],
          ['b', 'default_db', [range(2)]],
          ['b', 'default_web', [range(1)]],
        ].sort(),
      );
      // Plan's prediction for a sees b's ranges as held.
      assert.deepEqual(
        rangesHeldElsewhere(a).sort((x, y) => x.hostID - y.hostID),
        [range(1), range(2)],
      );
      // b's state dir is removed (a crashed test): its ranges come back at a's next allocation.
      await rm(path.join(dir, 'b'), { recursive: true });
      const a2 = await container(a, 'default_two');
      assert.deepEqual(await assignIdRange(a, a2, true), range(1));
      releaseIdRecordsLocks();
      const after = JSON.parse(await readFile(a.recordsFile, 'utf8')) as { records: { owner: { stateDir: string } }[] };
      assert.ok(
        after.records.every((r) => path.basename(r.owner.stateDir) === 'a'),
        "b's records were reclaimed",
      );
    }));

  it('two processes allocating at once, in two state dirs and in one, never get one range twice', () =>
    withTmpDir(async (dir) => {
      const worker = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../support/id-alloc-worker.js');
      const records = path.join(dir, 'node-id-ranges.json');
      const run = (stateDir: string, prefix: string) =>
        promisify(execFile)(process.execPath, [
          worker,
          records,
          path.join(dir, stateDir, 'containers'),
          prefix,
          '15',
          String(POOL.hostID),
          String(RANGE_SIZE * 64),
        ]);
      // Two instances (two state dirs), then two processes of one state dir, all on one records file.
      const outs = await Promise.all([run('a', 'x'), run('b', 'y')]);
      outs.push(...(await Promise.all([run('a', 'p'), run('a', 'q')])));
      const got = allocationsOf(outs);
      assert.equal(got.length, 60);
      const bases = got.map((g) => g.range.hostID);
      assert.equal(new Set(bases).size, 60, `a range given twice: ${JSON.stringify(got)}`);
      assert.ok(bases.every((b) => b >= POOL.hostID && b < POOL.hostID + RANGE_SIZE * 64 && (b - POOL.hostID) % RANGE_SIZE === 0));
      // The node's records name every one of them, each with its range.
      const file = JSON.parse(await readFile(records, 'utf8')) as { records: { owner: { container: string }; ranges: { hostID: number }[] }[] };
      assert.deepEqual(file.records.map((r) => r.ranges[0]!.hostID).sort(), [...bases].sort());
    }));

  it("reads the records' journal with the file: later lines win, a removal drops, a line cut short is ignored, a bad line is named", () =>
    withTmpDir(async (dir) => {
      const a = instance(dir, 'a');
      const b = instance(dir, 'b');
      const other = path.join(dir, 'other');
      await mkdir(path.join(other, 'containers', 'default_x'), { recursive: true });
      await mkdir(path.join(other, 'containers', 'default_y'), { recursive: true });
      const rec = (container: string, ...rs: number[]) => ({ owner: { stateDir: other, container }, ranges: rs.map((i) => range(i)) });
      await writeFile(a.recordsFile, JSON.stringify({ version: 1, records: [rec('default_x', 0), rec('default_y', 1)] }));
      // x moves to range 2, y is removed, a crash cut the last append short (range 3 never given).
      const lines = [rec('default_x', 2), rec('default_y')].map((r) => JSON.stringify(r)).join('\n');
      await writeFile(journalOf(a.recordsFile), `${lines}\n${JSON.stringify(rec('default_z', 3)).slice(0, 30)}`);
      assert.deepEqual(await readIdRecords(a.recordsFile), [rec('default_x', 2)]);
      const a1 = await container(a, 'default_web');
      assert.deepEqual(await assignIdRange(a, a1, true), range(0), 'range 0 and 1 are free again, 2 is held');
      releaseIdRecordsLocks();
      assert.deepEqual(
        (await readIdRecords(a.recordsFile)).map((r) => [r.owner.container, r.ranges]),
        [
          ['default_x', [range(2)]],
          ['default_web', [range(0)]],
        ],
      );
      await writeFile(journalOf(b.recordsFile), 'not json\n');
      await assert.rejects(assignIdRange(b, await container(b, 'default_web'), true), new RegExp(`${journalOf(b.recordsFile)}:1: not JSON`));
    }));

  it("imports a state dir's per-container records (before node-wide records) at its first start", () =>
    withTmpDir(async (dir) => {
      const a = instance(dir, 'a');
      const b = instance(dir, 'b');
      // An acetate before node-wide records gave a's container range 0 and wrote only its ids.json.
      const old = await container(a, 'default_old');
      await writeFile(idsFileOf(old), JSON.stringify({ base: range(0).hostID, size: RANGE_SIZE, range: range(0) }));
      await importIdRecords(a); // a's first start
      const b1 = await container(b, 'default_web');
      assert.deepEqual(await assignIdRange(b, b1, true), range(1), "a's imported range is held");
    }));
});
