/**
 * A container directory appears and disappears in one rename, so that an acetate killed in the
 * middle of a create or a removal never leaves a directory without a record (which nothing would
 * clean up once the container is no longer declared). What a killed acetate leaves of the
 * temporary directories is swept by the next list().
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';

describe('RuncRuntime: creates and removals interrupted by a SIGKILL', function () {
  this.timeout(60_000);
  let st: TmpState;
  beforeEach(async () => {
    st = await tmpState();
  });
  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  const containers = (): string => st.runtime.paths.containersDir;

  it('create and remove leave only complete container dirs, and nothing at all after remove', async () => {
    await st.runtime.create({ namespace: 'default', name: 'a', spec: testSpec(), source: FILE_SOURCE });
    assert.deepEqual(await readdir(containers()), ['default_a']);
    assert.ok((await readdir(path.join(containers(), 'default_a'))).includes('record.json'));
    await st.runtime.start('default/a');
    await st.runtime.remove('default/a', { keepPrivateArea: false });
    assert.deepEqual(await readdir(containers()), []);
  });

  it('list() in the lock holder sweeps what a killed acetate left mid-create or mid-removal, even under a reused pid; a reader sweeps nothing', async () => {
    const deadPid = 2 ** 22 + 7; // above pid_max: never alive
    const leftovers = [`.creating-${deadPid}-default_x-0a0b0c0d`, `.removing-${deadPid}-default_y-01020304`];
    for (const l of leftovers) {
      await mkdir(path.join(containers(), l, 'upper'), { recursive: true });
      await writeFile(path.join(containers(), l, 'record.json'), '{}');
    }
    // pid 1 is alive, as a dead acetate's pid can be again once reused: the holder of the node
    // lock is the only writer, so this is a leftover too.
    const live = `.creating-1-default_z-0f0f0f0f`;
    await mkdir(path.join(containers(), live), { recursive: true });
    // A runtime that does not hold the node lock (a read-only command) sweeps nothing.
    const reader = makeRuntime(st.dir, { sweepLeftovers: false });
    assert.deepEqual(await reader.list(), []);
    assert.deepEqual((await readdir(containers())).sort(), [...leftovers, live].sort());
    assert.deepEqual(await st.runtime.list(), []);
    assert.deepEqual(await readdir(containers()), []);
  });

  it("remove() of a container clears what its own SIGKILLed removal left in the trash, and not another container's", async () => {
    const deadPid = 2 ** 22 + 9;
    await st.runtime.create({ namespace: 'default', name: 'y', spec: testSpec(), source: FILE_SOURCE });
    const mine = `.removing-${deadPid}-default_y-01020304`;
    const other = `.removing-${deadPid}-default_y2-05060708`;
    for (const l of [mine, other]) await mkdir(path.join(containers(), l, 'upper'), { recursive: true });
    await st.runtime.remove('default/y', { keepPrivateArea: false });
    assert.deepEqual(await readdir(containers()), [other]);
    // Removing a container that is already gone clears its trash too (the retried removal).
    await mkdir(path.join(containers(), mine), { recursive: true });
    await st.runtime.remove('default/y', { keepPrivateArea: false });
    assert.deepEqual(await readdir(containers()), [other]);
    // A runtime without the node lock leaves it alone; the holder's list() sweeps the rest.
    await mkdir(path.join(containers(), mine), { recursive: true });
    await makeRuntime(st.dir, { sweepLeftovers: false }).remove('default/y', { keepPrivateArea: false });
    assert.deepEqual((await readdir(containers())).sort(), [mine, other].sort());
    await st.runtime.list();
    assert.deepEqual(await readdir(containers()), []);
  });
});
