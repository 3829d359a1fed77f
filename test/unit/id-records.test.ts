import assert from 'node:assert/strict';
import { chmod, chown, mkdir, readdir, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readIdRecords, readIdRecordsSync, writeIdRecords } from '../../src/runtime/walls/id-records.js';
import { IdPoolError } from '../../src/runtime/walls/id-pool.js';
import { assignIdRange } from '../../src/runtime/walls/id-ranges.js';
import { withTmpDir } from '../support/tmpdir.js';

const RECORD = { owner: { stateDir: '/var/lib/acetate', container: 'default_web' }, ranges: [{ hostID: 1_000_065_536, size: 65536 }] };

async function refused(file: string, why: RegExp): Promise<void> {
  await assert.rejects(readIdRecords(file), (err: unknown) => {
    assert.ok(err instanceof IdPoolError, String(err));
    assert.ok(err.message.startsWith(`${file}: `), `names the file: ${err.message}`);
    assert.match(err.message, why);
    return true;
  });
  assert.deepEqual(readIdRecordsSync(file), [], "plan's read sees none (the allocator refuses)");
}

describe('node id records file: owner, mode and size checked when read (walls/id-records.ts)', () => {
  it("root's file in root's dir, writable by root only: read", () =>
    withTmpDir(async (dir) => {
      const file = path.join(dir, 'recs', 'node-id-ranges.json');
      await writeIdRecords(file, [RECORD]);
      assert.deepEqual(await readIdRecords(file), [RECORD]);
      assert.deepEqual(readIdRecordsSync(file), [RECORD]);
      assert.deepEqual(await readIdRecords(path.join(dir, 'recs', 'absent.json')), [], 'no file: none held');
    }));

  it('a file writable by group or others, or owned by another uid, is refused naming file and why', () =>
    withTmpDir(async (dir) => {
      const file = path.join(dir, 'recs', 'node-id-ranges.json');
      await writeIdRecords(file, [RECORD]);
      await chmod(file, 0o666);
      await refused(file, /refused: it is writable by its group \(mode 666\)/);
      await chmod(file, 0o602);
      await refused(file, /writable by others \(mode 602\)/);
      await chmod(file, 0o644);
      await chown(file, 1000, 1000);
      await refused(file, /it is owned by uid 1000, not root/);
      await chown(file, 0, 0);
      assert.deepEqual(await readIdRecords(file), [RECORD], 'put right: read again');
    }));

  it('a dir writable by others or not root-owned is refused (anyone could replace the file by rename)', () =>
    withTmpDir(async (dir) => {
      const recs = path.join(dir, 'recs');
      const file = path.join(recs, 'node-id-ranges.json');
      await writeIdRecords(file, [RECORD]);
      await chmod(recs, 0o1777);
      await refused(file, new RegExp(`its dir ${recs} is writable by its group`));
      await chmod(recs, 0o755);
      await chown(recs, 1000, 1000);
      await refused(file, new RegExp(`its dir ${recs} is owned by uid 1000, not root`));
    }));

  it('no file yet in a dir others may write in (/tmp): refused before anything is written there, the lock included', () =>
    withTmpDir(async (dir) => {
      const recs = path.join(dir, 'shared');
      await mkdir(recs, { mode: 0o755 });
      await chmod(recs, 0o1777);
      const file = path.join(recs, 'node-id-ranges.json');
      await refused(file, new RegExp(`its dir ${recs} is writable by its group`));
      const store = { containersDir: path.join(dir, 'containers'), recordsFile: file, pool: { hostID: 1_000_000_000, size: 131072 } };
      await mkdir(path.join(store.containersDir, 'default_web'), { recursive: true });
      await assert.rejects(assignIdRange(store, path.join(store.containersDir, 'default_web'), true), (err: unknown) => {
        assert.ok(err instanceof IdPoolError, String(err));
        assert.match(err.message, /is writable by its group/);
        return true;
      });
      assert.deepEqual(await readdir(recs), [], 'no records file, no lock file made there');
    }));

  it('a symlink in place of the file, and a file over 16 MiB, are refused', () =>
    withTmpDir(async (dir) => {
      const recs = path.join(dir, 'recs');
      await mkdir(recs, { mode: 0o700 });
      const real = path.join(recs, 'real.json');
      await writeIdRecords(real, [RECORD]);
      const link = path.join(recs, 'node-id-ranges.json');
      await symlink(real, link);
      await refused(link, /is a symlink: refused/);
      const big = path.join(recs, 'big.json');
      await writeFile(big, '{"version":1,"records":[]}', { mode: 0o644 });
      await truncate(big, 16 * 1024 * 1024 + 1);
      await refused(big, /16777217 bytes, more than 16777216: refused/);
    }));
});
