/**
 * A paused container (frozen by `runc pause`: by hand, or by another tool) is read as paused (get's
 * STATE: Paused), and its stop ends it within its grace period by its SIGTERM, as `docker stop`
 * does: a frozen process takes no signal until it is thawed, and the stop used to sit out its whole
 * grace, then SIGKILL it.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { exec } from '../../src/util/exec.js';
import { tmpStateForSuite, type TmpState } from '../support/tmp-state.js';
import { createTestContainer } from '../support/test-spec.js';
import { phase } from '../../src/controller/container-rows.js';

async function freezerState(pid: number): Promise<string> {
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => /^\d+:freezer:/.test(l))!;
  return (await readFile(`/sys/fs/cgroup/freezer${line.split(':')[2]}/freezer.state`, 'utf8')).trim();
}

describe('stop of a paused container', function () {
  this.timeout(60_000);
  let st: TmpState;
  tmpStateForSuite((s) => (st = s));

  it('paused by hand, with a 60 s grace: its SIGTERM ends it at once (143), not the SIGKILL after the grace', async () => {
    await createTestContainer(st.runtime, 'frozen', { command: ['sleep'], args: ['1000'] });
    const { pid } = await st.runtime.start('default/frozen');
    await exec('runc', ['--root', st.runtime.paths.runcRoot, 'pause', 'default_frozen']);
    assert.equal(await freezerState(pid), 'FROZEN');
    const seen = (await st.runtime.get('default/frozen'))!;
    assert.equal(seen.process.paused, true, "read as paused (runc's state file does not say it)");
    assert.equal(phase(seen), 'Paused', "get's STATE");
    const t0 = Date.now();
    const { exitCode } = await st.runtime.stop('default/frozen', { graceSeconds: 60 });
    assert.equal(exitCode, 143, 'ended by its SIGTERM');
    assert.ok(Date.now() - t0 < 10_000, `stopped in ${Date.now() - t0} ms, not after the grace`);
    assert.equal((await st.runtime.get('default/frozen'))?.process.state, 'absent');
  });

  it('a running container that is not paused is stopped as before: SIGTERM, then its exit', async () => {
    await createTestContainer(st.runtime, 'thawed', { command: ['sleep'], args: ['1000'] });
    await st.runtime.start('default/thawed');
    const seen = (await st.runtime.get('default/thawed'))!;
    assert.equal(seen.process.paused, undefined);
    assert.equal(phase(seen), 'Running');
    const { exitCode } = await st.runtime.stop('default/thawed', { graceSeconds: 60 });
    assert.equal(exitCode, 143);
  });
});
