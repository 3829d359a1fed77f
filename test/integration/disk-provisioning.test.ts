/**
 * Disk images and the state dir's space, on a small state dir of its own (a 300M tmpfs): with the
 * default full provisioning every image holds its space from the start, so two disks cannot
 * promise more than the node has, and a container's acknowledged writes survive a node whose
 * state dir is full; destroy still works then. Thin provisioning (explicit) returns what is freed
 * inside to the node.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { NormalizedSpec } from '../../src/api/types.js';
import type { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { exec } from '../../src/util/exec.js';
import { allocatedBytes, inContainer, MI } from '../support/disk.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeRuntime } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

const SLEEP = ['sh', '-c', 'exec sleep 100000'];

describe('disk provisioning on a small state dir (real loop devices, XFS, tmpfs)', function () {
  this.timeout(180_000);
  let mnt: string;
  let stateDir: string;
  let runtime: RuncRuntime;
  const saved = process.env.ACETATE_DISK_PROVISIONING;
  const savedFloor = process.env.ACETATE_MIN_FREE;

  beforeEach(async () => {
    mnt = await mkdtemp('/tmp/acetate-smallfs-');
    await exec('mount', ['-t', 'tmpfs', '-o', 'size=300M', 'tmpfs', mnt]);
    stateDir = path.join(mnt, 'state');
    await mkdir(stateDir);
    runtime = makeRuntime(stateDir);
  });

  afterEach(async () => {
    await rm(path.join(mnt, 'filler'), { force: true });
    await cleanupStateDir(stateDir, { runtime });
    await assertNoLeaks(stateDir, { dirRemoved: true });
    await exec('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
    if (saved === undefined) delete process.env.ACETATE_DISK_PROVISIONING;
    else process.env.ACETATE_DISK_PROVISIONING = saved;
    if (savedFloor === undefined) delete process.env.ACETATE_MIN_FREE;
    else process.env.ACETATE_MIN_FREE = savedFloor;
  });

  async function createRunning(name: string, spec: Partial<NormalizedSpec>): Promise<number> {
    await runtime.create({ namespace: 'default', name, spec: testSpec({ command: SLEEP, ...spec }), source: FILE_SOURCE });
    return (await runtime.start(`default/${name}`)).pid;
  }
  const img = (name: string) => path.join(stateDir, 'containers', `default_${name}`, 'disk.img');
  const freeBytes = async () => {
    const s = await statfs(mnt);
    return s.bavail * s.bsize;
  };

  it('full (default): a second disk that does not fit is refused; with the node full, writes inside are kept and destroy works', async () => {
    delete process.env.ACETATE_DISK_PROVISIONING;
    process.env.ACETATE_MIN_FREE = '0'; // this state dir is smaller than the default floor: the disk's own check is under test
    const pid = await createRunning('one', { resources: { diskBytes: 200 * MI } });
    assert.ok((await allocatedBytes(img('one'))) >= 200 * MI, 'the image holds its whole size on the node');
    await assert.rejects(createRunning('two', { resources: { diskBytes: 200 * MI } }), /more than the state dir's filesystem can hold/);
    // The node's state dir fills up to the last byte, from outside the container.
    await exec('sh', ['-c', `dd if=/dev/zero of=${mnt}/filler bs=1M 2>/dev/null; true`]);
    assert.ok((await freeBytes()) < MI, 'the state dir is full');
    // Inside, 150 MiB written and synced: acknowledged, so it must be there after the page cache is gone.
    const w = await inContainer(pid, 'head -c 157286400 /dev/urandom > /data.bin && sync && md5sum /data.bin; echo rc=$?');
    assert.match(w.out, /rc=0/);
    const sum = /^([0-9a-f]{32}) /m.exec(w.out)![1];
    await writeFile('/proc/sys/vm/drop_caches', '3');
    const back = await inContainer(pid, 'md5sum /data.bin');
    assert.equal(/^([0-9a-f]{32}) /m.exec(back.out)?.[1], sum, `the data read back is what was written: ${back.out}`);
    // Destroy on a full state dir.
    await runtime.stop('default/one', { graceSeconds: 0 });
    await runtime.remove('default/one', { keepPrivateArea: false });
    assert.equal(await runtime.get('default/one'), undefined);
  });

  it('thin (ACETATE_DISK_PROVISIONING=thin): disks may promise more than is free, and space freed inside returns to the node', async () => {
    process.env.ACETATE_DISK_PROVISIONING = 'thin';
    const pid = await createRunning('one', { resources: { diskBytes: 200 * MI } });
    await createRunning('two', { resources: { diskBytes: 200 * MI } });
    assert.ok((await allocatedBytes(img('one'))) < 50 * MI, 'sparse');
    const before = await freeBytes();
    await inContainer(pid, 'head -c 104857600 /dev/zero > /fill && sync');
    await waitFor('100 MiB taken on the node', async () => before - (await freeBytes()) > 90 * MI);
    await inContainer(pid, 'rm /fill && sync');
    // XFS frees an unlinked file's blocks in the background and discards them at its next log
    // checkpoint (every 30 s by itself): a sync forces one, as any later write would.
    await waitFor(
      'the space returned to the node',
      async () => {
        await inContainer(pid, 'sync');
        return before - (await freeBytes()) < 20 * MI;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
  });

  it('refuses an unknown provisioning value by name', async () => {
    process.env.ACETATE_DISK_PROVISIONING = 'fat';
    await assert.rejects(createRunning('bad', { resources: { diskBytes: 64 * MI } }), /ACETATE_DISK_PROVISIONING="fat": give full or thin/);
  });

  it('below the free-space floor (ACETATE_MIN_FREE) creates and pulls are refused with the figures; what runs is untouched', async () => {
    const pid = await createRunning('runs', {});
    process.env.ACETATE_MIN_FREE = '295Mi'; // more than this 300M filesystem has free
    await assert.rejects(
      createRunning('next', {}),
      /creating default\/next refused: the state dir's filesystem has [\d.]+Mi free, leaving less than the 295Mi kept free on the node \(ACETATE_MIN_FREE\)/,
    );
    const digest = `sha256:${'a'.repeat(64)}`;
    await assert.rejects(
      runtime.images.ensure('127.0.0.1:1/never/pulled', digest),
      new RegExp(`pulling 127\\.0\\.0\\.1:1/never/pulled@${digest} refused: the state dir's filesystem has`),
    );
    assert.equal((await runtime.get('default/runs'))?.process.pid, pid, 'the running container is untouched');
    assert.equal(await runtime.get('default/next'), undefined, 'nothing of the refused create is left');
    // The disk a create allocates counts: 100Mi free after a 180Mi disk is below a 150Mi floor.
    process.env.ACETATE_MIN_FREE = '150Mi';
    await createRunning('next', {});
    await assert.rejects(
      createRunning('big', { resources: { diskBytes: 180 * MI } }),
      /a disk of 180Mi for default\/big refused: the state dir's filesystem has [\d.]+Mi free, 180\.0Mi of it for this disk, leaving less than the 150Mi/,
    );
    assert.notEqual((await runtime.get('default/big'))?.process.state, 'running', 'refused before its disk was made: it never ran');
    // So does a grow: 100Mi → 180Mi would take 80Mi of the ~190Mi free, leaving less than 150Mi.
    const sized = await createRunning('sized', { resources: { diskBytes: 100 * MI } });
    await assert.rejects(
      runtime.updateResources('default/sized', { diskBytes: 180 * MI }),
      /a disk of 180Mi for default\/sized refused: .* 80\.0Mi of it for this disk, leaving less than the 150Mi/,
    );
    assert.equal((await runtime.get('default/sized'))?.process.pid, sized, 'the container runs on, its disk as it was');
  });
});
