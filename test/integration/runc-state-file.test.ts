/** Reading runc's state.json directly gives what `runc state` says: running, stopped, annotations. */
import assert from 'node:assert/strict';
import { RuncCli } from '../../src/runtime/runc/runc-cli.js';
import { findBinary } from '../../src/util/find-binary.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

describe('runc state from state.json (no runc process per container)', function () {
  let st: TmpState;
  let runc: RuncCli;

  beforeEach(async () => {
    st = await tmpState();
    runc = new RuncCli({ binary: (await findBinary('runc'))!, root: st.runtime.paths.runcRoot });
  });

  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  it('agrees with `runc state` and `runc list` for a running and then a killed container', async () => {
    await st.runtime.create({ namespace: 'default', name: 'sf', spec: testSpec({ command: ['sleep', '1000'] }), source: FILE_SOURCE });
    const { pid } = await st.runtime.start('default/sf');
    const fromFile = await runc.state('default_sf');
    const fromRunc = await runc.stateFromRunc('default_sf');
    assert.equal(fromFile?.status, 'running');
    assert.equal(fromFile?.pid, pid);
    for (const k of ['id', 'pid', 'status', 'bundle', 'rootfs', 'annotations'] as const) assert.deepEqual(fromFile![k], fromRunc![k], k);
    assert.deepEqual(
      (await runc.list()).map((s) => [s.id, s.status, s.pid]),
      [['default_sf', 'running', pid]],
    );

    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await runc.stateFromRunc('default_sf'))?.status === 'stopped', { what: 'runc says stopped' });
    const stopped = await runc.state('default_sf');
    assert.equal(stopped?.status, 'stopped');
    assert.equal(stopped?.pid, 0);
    assert.equal(await runc.state('default_nope'), undefined);
  });
});
