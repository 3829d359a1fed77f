import assert from 'node:assert/strict';
import path from 'node:path';
import { readdir, stat } from 'node:fs/promises';
import {
  StatusStore,
  readStatusRecords,
  readStatusRecord,
  readProblems,
  readControllerRecord,
  controllerAlive,
  recordPath,
} from '../../src/controller/status-store.js';
import { withTmpDir } from '../support/tmpdir.js';
import { readProcStat } from '../../src/util/processes.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

function record(key: string, phase: 'Running' | 'Pending' = 'Running'): StatusRecord {
  const [namespace, name] = key.split('/') as [string, string];
  return { key, namespace, name, status: { phase }, problems: [], recentActions: [], updatedAt: new Date().toISOString() };
}

describe('status store', () => {
  it('writes records atomically, only when they change, and reads them back', async () => {
    await withTmpDir(async (dir) => {
      const s = new StatusStore(dir);
      await s.publishDetailed(record('default/web'));
      await s.publishDetailed(record('team-a/db', 'Pending'));
      const file = recordPath(dir, 'default/web');
      // Writes are atomic (temp file + rename), so a rewrite would show as a new inode.
      const ino = (await stat(file)).ino;
      await s.publishDetailed({ ...record('default/web'), updatedAt: 'later' });
      assert.equal((await stat(file)).ino, ino, 'unchanged content is not rewritten');
      await s.publishDetailed(record('default/web', 'Pending'));
      assert.notEqual((await stat(file)).ino, ino, 'changed content is rewritten');
      await s.publishDetailed(record('default/web'));
      const all = await readStatusRecords(dir);
      assert.deepEqual(
        all.map((r) => r.key),
        ['default/web', 'team-a/db'],
      );
      assert.equal((await readStatusRecord(dir, 'team-a/db'))?.status.phase, 'Pending');
      assert.deepEqual(
        (await readdir(path.dirname(file))).filter((f) => f.startsWith('.')),
        [],
        'no temporary files left',
      );
      // StatusSink.publish keeps the details
      await s.publishDetailed({ ...record('default/web'), source: { kind: 'file', file: '/m/web.yaml', line: 4 } });
      await s.publish('default/web', { phase: 'Failed' });
      const r = await readStatusRecord(dir, 'default/web');
      assert.equal(r?.status.phase, 'Failed');
      assert.deepEqual(r?.source, { kind: 'file', file: '/m/web.yaml', line: 4 });
      await s.remove('default/web');
      assert.equal(await readStatusRecord(dir, 'default/web'), undefined);
      // a new store (a restarted acetate) loads what was written
      const s2 = new StatusStore(dir);
      await s2.load();
      assert.equal(s2.previous('team-a/db')?.status.phase, 'Pending');
    });
  });

  it("signs a probe verdict with the writer (this process's pid and /proc start time); a plain publish never keeps one", async () => {
    await withTmpDir(async (dir) => {
      const s = new StatusStore(dir);
      const verdict = { kind: 'liveness' as const, pid: 4242, message: 'Liveness probe failed 3 times: HTTP 500', probeHash: 'abc' };
      await s.publishDetailed({ ...record('default/web'), unhealthy: { ...verdict, by: { pid: 1, startTicks: 1 } } });
      const me = { pid: process.pid, startTicks: (await readProcStat(process.pid))!.startTime };
      assert.deepEqual((await readStatusRecord(dir, 'default/web'))?.unhealthy, { ...verdict, by: me }, 'the writer signs, whatever it was given');
      await s.publish('default/web', { phase: 'Running' });
      assert.equal((await readStatusRecord(dir, 'default/web'))?.unhealthy, undefined, "only a verdict given now is written: a loaded one is a dead prober's");
    });
  });

  it('writes problems and the controller record; tells whether the controller is alive', async () => {
    await withTmpDir(async (dir) => {
      const s = new StatusStore(dir);
      await s.writeProblems({ problems: [{ origin: '/m/a.yaml', message: 'bad', keys: [], kind: 'invalid' }], complete: true });
      assert.equal((await readProblems(dir))?.problems[0]?.origin, '/m/a.yaml');
      await s.writeController({ pid: process.pid, startedAt: 'now', sources: ['files:/m'], ready: true });
      const c = await readControllerRecord(dir);
      assert.equal(c?.pid, process.pid);
      assert.ok(controllerAlive(c));
      assert.ok(!controllerAlive({ ...c!, stoppedAt: 'then' }));
      assert.ok(!controllerAlive(undefined));
      assert.deepEqual(await readStatusRecords(path.join(dir, 'nowhere')), []);
    });
  });
});

describe('statusSummary', () => {
  it('explains a container with the most telling condition', async () => {
    const { statusSummary } = await import('../../src/controller/status-store.js');
    const rec = record('default/web');
    rec.status.conditions = [
      { type: 'Ready', status: 'True', reason: 'Running' },
      { type: 'Synced', status: 'False', reason: 'InvalidManifest', message: '/m/web.yaml:3: YAML syntax error' },
      { type: 'ResizePending', status: 'False' },
    ];
    assert.deepEqual(statusSummary(rec), { phase: 'Running', ready: true, reason: 'InvalidManifest', message: '/m/web.yaml:3: YAML syntax error' });
    rec.status.conditions[1] = { type: 'Synced', status: 'True', reason: 'Converged' };
    assert.deepEqual(statusSummary(rec), { phase: 'Running', ready: true });
  });
});
