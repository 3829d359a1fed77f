import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  admitOneMore,
  findNodeLimits,
  NodeLimitError,
  parseMemoryCgroups,
  parseRootKeys,
  readNodeFacts,
  type NodeFacts,
} from '../../src/runtime/runc/node-limits.js';

/** A node with room for everything. */
const ROOMY: NodeFacts = {
  tasks: 400,
  pidMax: 4_194_304,
  threadsMax: 192_735,
  rootKeys: { keys: 404, bytes: 7_656 },
  rootMaxKeys: 1_000_000,
  rootMaxBytes: 25_000_000,
  files: 15_000,
  fileMax: 2_466_248,
  memoryCgroups: 587,
};

describe('node limits (issue 25 preflight)', () => {
  it('finds nothing when the wanted containers fit under every limit', () => {
    assert.deepEqual(findNodeLimits(ROOMY, 2_500), []);
  });

  it('names kernel.pid_max with the sysctl and a value that fits, warning when only some fit', () => {
    const f = findNodeLimits({ ...ROOMY, pidMax: 32_768, tasks: 30_000 }, 2_500);
    assert.equal(f.length, 1);
    const [pid] = f;
    assert.equal(pid!.limit, 'kernel.pid_max');
    assert.equal(pid!.refuse, false);
    // (32768 - 656 spare - 30000) / 3 tasks each = 704 fit.
    assert.equal(pid!.room, 704);
    assert.match(pid!.message, /kernel\.pid_max is 32768 and 30000 are in use: only 704 of the 2500 containers to start fit/);
    assert.match(pid!.fix, /sysctl -w kernel\.pid_max=(\d+)/);
    const value = Number(/=(\d+)/.exec(pid!.fix)![1]);
    assert.ok(value >= 30_000 + 2_500 * 3, `the suggested value ${value} fits the wanted containers`);
  });

  it('refuses when not one more container fits (root keyring quota full)', async () => {
    const full = { ...ROOMY, rootMaxKeys: 1_000, rootKeys: { keys: 990, bytes: 20_000 } };
    const f = findNodeLimits(full, 1);
    assert.deepEqual(
      f.map((x) => [x.limit, x.refuse]),
      [['kernel.keys.root_maxkeys', true]],
    );
    await assert.rejects(
      admitOneMore('starting default/web', async () => full),
      (err: unknown) =>
        err instanceof NodeLimitError &&
        /starting default\/web refused: kernel\.keys\.root_maxkeys is 1000 and 990 are in use: not one more container fits.*sysctl -w kernel\.keys\.root_maxkeys=/.test(
          err.message,
        ),
    );
    await admitOneMore('starting default/web', async () => ROOMY); // room: no error
  });

  it('counts namespaces against user.max_<kind>_namespaces and memory cgroups against the v1 id space', () => {
    const f = findNodeLimits({ ...ROOMY, memoryCgroups: 65_000, namespaces: { net: { used: 90, max: 100 }, mnt: { used: 10, max: 96_367 } } }, 50);
    assert.deepEqual(f.map((x) => x.limit).sort(), ['memory cgroups (cgroup v1 ids)', 'user.max_net_namespaces']);
  });

  it("names systemd's TasksMax when acetate's own pids cgroup (cgroup v1: the conmons stay in it) is nearly full", () => {
    const f = findNodeLimits({ ...ROOMY, ownPids: { cgroup: '/sys/fs/cgroup/pids/system.slice/acetate.service', max: 4_915, current: 4_800 } }, 100);
    assert.equal(f.length, 1);
    assert.equal(f[0]!.room, 16); // 4915 - 99 spare - 4800
    assert.match(f[0]!.message, /pids\.max of acetate's cgroup is 4915 and 4800 are in use: only 16 of the 100 containers to start fit.*TasksMax=/);
  });

  it('parses /proc/key-users and /proc/cgroups', () => {
    assert.deepEqual(parseRootKeys('    0:   410 409/409 404/1000000 7656/25000000\n1000000000:     1 1/1 1/200 15/20000\n'), { keys: 404, bytes: 7_656 });
    assert.deepEqual(parseRootKeys(''), { keys: 0, bytes: 0 });
    assert.equal(parseMemoryCgroups('#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t406\t1\nmemory\t4\t587\t1\n'), 587);
    // cgroup v2 only: hierarchy 0, no v1 id space to count.
    assert.equal(parseMemoryCgroups('memory\t0\t87\t1\n'), undefined);
  });

  it('reads the facts from a /proc tree (namespaces scanned per process)', async () => {
    const proc = await mkdtemp(path.join(os.tmpdir(), 'acetate-proc-'));
    try {
      const w = async (rel: string, text: string) => {
        await mkdir(path.dirname(path.join(proc, rel)), { recursive: true });
        await writeFile(path.join(proc, rel), text);
      };
      await w('loadavg', '0.50 0.40 0.30 2/345 12345\n');
      await w('sys/fs/file-nr', '14856\t0\t2466248\n');
      await w('sys/kernel/pid_max', '32768\n');
      await w('sys/kernel/threads-max', '192735\n');
      await w('sys/kernel/keys/root_maxkeys', '1000000\n');
      await w('sys/kernel/keys/root_maxbytes', '25000000\n');
      await w('key-users', '    0:   10 10/10 7/1000000 140/25000000\n');
      await w('cgroups', 'memory\t4\t90\t1\n');
      await w('sys/user/max_net_namespaces', '100\n');
      for (const [pid, net] of [
        ['1', 'net:[1]'],
        ['2', 'net:[1]'],
        ['3', 'net:[2]'],
      ]) {
        await mkdir(path.join(proc, pid!, 'ns'), { recursive: true });
        await import('node:fs/promises').then((fs) => fs.symlink(net!, path.join(proc, pid!, 'ns', 'net')));
      }
      // 345 tasks + 50 wanted are far below 100 × 0.98? No: 395 > 98, so the scan runs; with max 10,000 it is skipped.
      assert.deepEqual((await readNodeFacts({ proc, namespaces: 50 })).namespaces, { net: { used: 2, max: 100 } });
      await w('sys/user/max_net_namespaces', '10000\n');
      assert.equal((await readNodeFacts({ proc, namespaces: 50 })).namespaces, undefined);
      await w('sys/user/max_net_namespaces', '100\n');
      const f = await readNodeFacts({ proc, namespaces: true });
      assert.equal(f.tasks, 345);
      assert.equal(f.files, 14_856);
      assert.equal(f.fileMax, 2_466_248);
      assert.equal(f.pidMax, 32_768);
      assert.deepEqual(f.rootKeys, { keys: 7, bytes: 140 });
      assert.equal(f.memoryCgroups, 90);
      assert.deepEqual(f.namespaces, { net: { used: 2, max: 100 } });
      // Each container has a cgroup namespace of its own too: counted against user.max_cgroup_namespaces.
      await w('sys/user/max_cgroup_namespaces', '100\n');
      for (const [pid, ns] of [
        ['1', 'cgroup:[7]'],
        ['3', 'cgroup:[8]'],
      ]) {
        await import('node:fs/promises').then((fs) => fs.symlink(ns!, path.join(proc, pid!, 'ns', 'cgroup')));
      }
      assert.deepEqual((await readNodeFacts({ proc, namespaces: true })).namespaces, { cgroup: { used: 2, max: 100 }, net: { used: 2, max: 100 } });
    } finally {
      await rm(proc, { recursive: true, force: true });
    }
  });

  it("reads this node's real /proc", async function () {
    this.timeout(60_000); // a scan of every process's namespaces: slow on a busy node
    const f = await readNodeFacts({ namespaces: true });
    assert.ok(f.tasks > 0 && f.pidMax > f.tasks, JSON.stringify(f));
    assert.ok(f.fileMax > f.files, JSON.stringify(f));
    assert.ok((f.namespaces?.mnt?.used ?? 0) >= 1, JSON.stringify(f.namespaces));
  });
});
