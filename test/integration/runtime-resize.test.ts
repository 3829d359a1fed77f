/**
 * In-place resize against the kernel: a memory decrease below the current usage is refused by the
 * kernel (EBUSY); updateResources reports it as deferred, keeps the old limit, applies the rest.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';
import { sameMemory } from '../../src/runtime/runc/cgroups.js';
import { containerIdOf } from '../../src/runtime/runc/paths.js';

const MI = 2 ** 20;

describe('RuncRuntime.updateResources against the kernel', function () {
  this.timeout(60_000);
  let st: TmpState;

  before(async () => {
    st = await tmpState();
  });

  after(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  it('defers a memory decrease below usage (old limit stays) and still applies cpu and pids', async () => {
    // 40 MiB in a tmpfs (/dev/shm) is charged to the container and cannot be reclaimed without swap.
    await st.runtime.create({
      namespace: 'default',
      name: 'hog',
      spec: testSpec({
        command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null && echo filled; sleep 1000'],
        resources: { cpuMillis: 500, memoryBytes: 100 * MI, pids: 32 },
      }),
      source: FILE_SOURCE,
    });
    const { pid } = await st.runtime.start('default/hog');
    await waitFor('40 MiB written', async () => (await st.runtime.logs('default/hog')).includes('filled'));
    const rel = `${st.runtime.paths.cgroupParent}/default_hog`;
    const usage = Number(await readFile(path.join('/sys/fs/cgroup/memory', rel, 'memory.usage_in_bytes'), 'utf8'));
    assert.ok(usage > 40 * MI, `usage ${usage} includes the tmpfs pages`);

    const r = await st.runtime.updateResources('default/hog', { cpuMillis: 250, memoryBytes: 20 * MI, pids: 16 });
    assert.equal(r.deferred.length, 1, JSON.stringify(r));
    assert.equal(r.deferred[0]!.resource, 'memory');
    assert.match(r.deferred[0]!.reason, /memory usage .* is above the new limit 20Mi; the kernel refused it/);
    assert.deepEqual(r.limits, { cpuMillis: 250, memoryBytes: 100 * MI, pids: 16 }, 'old memory limit stays');
    assert.equal((await readFile(path.join('/sys/fs/cgroup/memory', rel, 'memory.limit_in_bytes'), 'utf8')).trim(), String(100 * MI));

    const c = await st.runtime.get('default/hog');
    assert.equal(c!.process.state, 'running');
    assert.equal(c!.process.pid, pid, 'same process');
    assert.deepEqual(c!.applied.spec.resources, { cpuMillis: 250, memoryBytes: 100 * MI, pids: 16 }, 'the record holds what is in force');

    // An increase is fine; so is a decrease that stays above the usage.
    const up = await st.runtime.updateResources('default/hog', { cpuMillis: 250, memoryBytes: 200 * MI, pids: 16 });
    assert.deepEqual(up.deferred, []);
    assert.ok(sameMemory(up.limits.memoryBytes, 200 * MI));
    const down = await st.runtime.updateResources('default/hog', { cpuMillis: 250, memoryBytes: 80 * MI, pids: 16 });
    assert.deepEqual(down.deferred, []);
    assert.ok(sameMemory(down.limits.memoryBytes, 80 * MI));
    assert.equal((await st.runtime.get('default/hog'))!.process.pid, pid);

    // The limits are written into the cgroup files directly (cgroup v1) and runc's own record
    // follows: a later runc update of cpu and pids alone (it writes every limit from state.json)
    // must not put an old memory limit back.
    const runcState = async () =>
      (
        JSON.parse(await readFile(path.join(st.runtime.paths.runcRoot, containerIdOf('default', 'hog'), 'state.json'), 'utf8')) as {
          config: { cgroups: { memory?: number; pids_limit?: number; cpu_quota?: number } };
        }
      ).config.cgroups;
    assert.equal((await runcState()).memory, 80 * MI, "runc's state.json holds the memory limit in force");
    const cpuOnly = await st.runtime.updateResources('default/hog', { cpuMillis: 300, memoryBytes: 80 * MI, pids: 20 });
    assert.deepEqual(cpuOnly.deferred, []);
    assert.deepEqual(cpuOnly.limits, { cpuMillis: 300, memoryBytes: 80 * MI, pids: 20 });
    assert.equal((await readFile(path.join('/sys/fs/cgroup/memory', rel, 'memory.limit_in_bytes'), 'utf8')).trim(), String(80 * MI));
    const after = await runcState();
    assert.equal(after.pids_limit, 20);
    assert.equal(after.cpu_quota, 30_000);
  });

  it('records new limits of a container that is not running; they apply at the next start', async () => {
    await st.runtime.stop('default/hog', { graceSeconds: 0 });
    const r = await st.runtime.updateResources('default/hog', { cpuMillis: 1000, memoryBytes: 64 * MI });
    assert.deepEqual(r, { limits: {}, deferred: [] });
    await st.runtime.start('default/hog');
    const c = await st.runtime.get('default/hog');
    assert.deepEqual(c!.limits, { cpuMillis: 1000, memoryBytes: 64 * MI });
    await st.runtime.remove('default/hog', { keepPrivateArea: false });
    await assertNoLeaks(st.dir);
  });
});
