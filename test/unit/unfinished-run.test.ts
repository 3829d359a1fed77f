/**
 * A run's end, once recorded, is kept whatever the two times say (src/runtime/runc/observe.ts):
 * startedAt is stamped by acetate after `runc start` returned, finishedAt is the mtime of conmon's
 * exit file, so a process that died at once (OOM-killed by its first allocation) can have a
 * recorded end older than its start. The real run is test/integration/supervision.test.ts.
 */
import assert from 'node:assert/strict';
import { processInfo, unfinishedRun } from '../../src/runtime/runc/observe.js';
import { containerPaths, instancePaths } from '../../src/runtime/runc/paths.js';
import type { ContainerStatusFile } from '../../src/runtime/runc/store.js';
import { currentBootId } from '../../src/runtime/runc/supervision.js';

describe('runc status file: is the last run unfinished?', () => {
  const cp = containerPaths(instancePaths('/nonexistent/acetate-unit-state'), 'default_oom');
  const startedAt = '2026-12-07T22:37:27.084Z';

  it('a start with no end recorded is unfinished; with another boot it is not', () => {
    assert.equal(unfinishedRun({ starts: 1, startedAt, bootId: currentBootId() }), true);
    assert.equal(unfinishedRun({ starts: 1, startedAt, bootId: 'another boot' }), false);
    assert.equal(unfinishedRun({ starts: 0 }), false);
  });

  it('an end recorded with a time before the start (the exit file written before the start was stamped) is finished, its exit code kept', async () => {
    const status: ContainerStatusFile = {
      starts: 1,
      startedAt,
      bootId: currentBootId(),
      finishedAt: '2026-12-07T22:37:27.077Z',
      lastExitCode: 137,
      lastReason: 'OOMKilled',
    };
    assert.equal(unfinishedRun(status), false);
    const p = await processInfo(cp, undefined, status);
    assert.equal(p.state, 'absent');
    assert.equal(p.exitCode, 137);
    assert.equal(p.reason, 'OOMKilled');
    assert.equal(p.unsupervised, undefined);
  });

  it('an unseen end (noteUnseenEnd) is finished, with no exit code', async () => {
    const p = await processInfo(cp, undefined, { starts: 1, startedAt, bootId: currentBootId(), finishedAt: '2026-12-07T22:37:30.000Z' });
    assert.equal(p.state, 'absent');
    assert.equal(p.exitCode, undefined);
  });
});
