/**
 * mapped-ids.ts against a /proc of files (a dir per pid, `ns/user` a link as the kernel shows it,
 * `uid_map`): what a listing between two full reads keeps and what it reads again.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forgetMappedRanges, MAPPED_FRESH_MS, mappedRanges, readMappedNamespaces } from '../../src/runtime/walls/mapped-ids.js';

describe('mapped-ids against a /proc of files', () => {
  let proc: string;
  const pid = (n: number, ns: number, map: string) => {
    mkdirSync(path.join(proc, String(n), 'ns'), { recursive: true });
    symlinkSync(`user:[${ns}]`, path.join(proc, String(n), 'ns', 'user'));
    writeFileSync(path.join(proc, String(n), 'uid_map'), map);
  };
  const starts = (now: number) => mappedRanges(now, proc).map((r) => r.hostID);
  beforeEach(() => {
    proc = mkdtempSync(path.join(os.tmpdir(), 'acetate-fake-proc-'));
    forgetMappedRanges();
  });
  afterEach(() => {
    rmSync(proc, { recursive: true, force: true });
    forgetMappedRanges();
  });

  it("a namespace number freed and given to a new namespace is read anew: the new one's ids, not the old one's", () => {
    const t0 = 1_000_000;
    pid(1, 4026531837, '         0          0 4294967295\n'); // the node's own
    pid(100, 4026532000, '         0 3900131072      65536\n');
    assert.deepEqual(starts(t0), [3900131072]);
    // The full read the upgrade's claim uses: the same, by namespace (the node's own left out).
    assert.deepEqual(readMappedNamespaces(proc), [{ ns: 'user:[4026532000]', ranges: [{ hostID: 3900131072, size: 65536 }] }]);
    // Its process ends; the kernel gives the number to the next namespace made, mapped elsewhere.
    rmSync(path.join(proc, '100'), { recursive: true });
    pid(101, 4026532000, '         0 3900196608      65536\n');
    assert.deepEqual(starts(t0 + MAPPED_FRESH_MS), [3900196608]);
  });

  it('a listing younger than MAPPED_FRESH_MS is used as it is; one older sees the new process', () => {
    const t0 = 2_000_000;
    pid(1, 4026531837, '         0          0 4294967295\n');
    assert.deepEqual(starts(t0), []);
    pid(200, 4026532100, '         0 3900262144      65536\n');
    assert.deepEqual(starts(t0 + MAPPED_FRESH_MS - 1), [], 'the last listing, reused');
    assert.deepEqual(starts(t0 + MAPPED_FRESH_MS), [3900262144]);
  });
});
