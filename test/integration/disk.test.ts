/**
 * resources.disk with real loop devices and XFS: the private area in its own filesystem. ENOSPC
 * inside and not on the node; grown live (same pid); shrunk at the next start by copying (or kept
 * when the data does not fit); data kept across grow, restart, replace, a new acetate process and a
 * reboot; the mount on the node private and invisible to other containers; leftovers swept.
 */
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { unmountAll } from '../../src/util/mounts.js';
import { hashOf } from '../../src/api/hash.js';
import type { NormalizedSpec } from '../../src/api/types.js';
import { plan } from '../../src/plan/plan.js';
import { isAlive } from '../support/proc.js';
import { exec } from '../../src/util/exec.js';
import { allocatedBytes, dfRoot, inContainer, MI, mountLines } from '../support/disk.js';
import { assertNoLeaks, loopsUnder } from '../support/leaks.js';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';
import { makeXfsImage } from '../../src/runtime/disk/xfs-image.js';
import { RESERVE_BYTES } from '../../src/util/space-reserve.js';

const SLEEP = ['sh', '-c', 'exec sleep 100000'];

describe('resources.disk: XFS on a loop device', function () {
  this.timeout(120_000);
  let st: TmpState;

  beforeEach(async () => {
    st = await tmpState('acetate-disk-');
  });

  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  async function createRunning(name: string, spec: Partial<NormalizedSpec>): Promise<number> {
    await st.runtime.create({ namespace: 'default', name, spec: testSpec({ command: SLEEP, ...spec }), source: FILE_SOURCE });
    return (await st.runtime.start(`default/${name}`)).pid;
  }

  /** What execute does for a restart: stop, record the wanted spec, start. */
  async function restartWith(name: string, diskBytes: number | undefined): Promise<number> {
    const key = `default/${name}`;
    const cur = (await st.runtime.get(key))!;
    await st.runtime.stop(key, { graceSeconds: 0 });
    const resources = { ...cur.applied.spec.resources };
    if (diskBytes === undefined) delete resources.diskBytes;
    else resources.diskBytes = diskBytes;
    const spec = { ...cur.applied.spec, resources };
    await st.runtime.recordApplied(key, { ...cur.applied, spec, specHash: hashOf(spec) });
    return (await st.runtime.start(key)).pid;
  }

  const dirOf = (name: string) => path.join(st.dir, 'containers', `default_${name}`);

  it('a 64Mi container that writes 100 MiB gets ENOSPC, keeps running, and costs the node at most 64 MiB', async () => {
    const pid = await createRunning('full', { resources: { diskBytes: 64 * MI } });
    const df = await dfRoot(pid);
    assert.ok(df.size > 50 * MI && df.size <= 64 * MI, `df / inside shows the 64Mi filesystem, not the node's: ${df.size}`);
    const w = await inContainer(pid, 'dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo "rc=$?"; sync');
    assert.match(w.out, /No space left on device/);
    assert.match(w.out, /rc=1/);
    const c = (await st.runtime.get('default/full'))!;
    assert.equal(c.process.state, 'running');
    assert.equal(c.process.pid, pid, 'same process');
    assert.ok(c.disk && c.disk.usedBytes > 50 * MI, `usage reported: ${JSON.stringify(c.disk)}`);
    assert.equal(c.limits.diskBytes, 64 * MI);
    const img = path.join(dirOf('full'), 'disk.img');
    // Allocated whole (full provisioning), and no more: the node's own extent blocks aside.
    const allocated = await allocatedBytes(img);
    assert.ok(allocated >= 64 * MI && allocated <= 65 * MI, `the node gave the image its 64 MiB: ${allocated}`);
    // What the instance holds on the node's filesystem, not counting the mounted image's contents
    // (the image, the space reserve for acetate's own records, records).
    // The host template's marker stock (host-view/, made once per node, a few MiB) is not this container's.
    const du = Number((await exec('du', ['-s', '-x', '--block-size=1', '--exclude=host-view', st.dir])).stdout.split('\t')[0]);
    assert.ok(du <= 66 * MI + RESERVE_BYTES, `state dir holds ${du} bytes`);
    assert.equal((await exec('df', ['-B1', '--output=used', dirOf('full') + '/disk'])).stdout.includes('Used'), true);
  });

  it('grows live (same pid, df shows it, more can be written, data kept) and shrinks at the next start', async () => {
    const pid = await createRunning('grow', { resources: { diskBytes: 64 * MI } });
    await inContainer(pid, 'mkdir -p /data && head -c 5000000 /dev/urandom > /data/keep && md5sum /data/keep > /keep.md5 && rm /etc/issue && sync');
    const r = await st.runtime.updateResources('default/grow', { diskBytes: 128 * MI });
    assert.deepEqual(r.deferred, []);
    assert.equal(r.limits.diskBytes, 128 * MI);
    assert.ok(isAlive(pid));
    assert.equal((await st.runtime.get('default/grow'))!.process.pid, pid, 'same pid');
    assert.ok((await dfRoot(pid)).size > 120 * MI, 'df inside shows the new size');
    const w = await inContainer(pid, 'dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo "rc=$?"; md5sum -c /keep.md5');
    assert.match(w.out, /rc=0/);
    assert.match(w.out, /keep: OK/);

    // A shrink the data does not fit in: infeasible, size stays, plan says so.
    const no = await st.runtime.updateResources('default/grow', { diskBytes: 64 * MI });
    assert.equal(no.deferred[0]?.resource, 'disk');
    assert.equal(no.deferred[0]?.infeasible, true, JSON.stringify(no));
    assert.equal(no.limits.diskBytes, 128 * MI);
    const actual = (await st.runtime.get('default/grow'))!;
    const desiredSpec = { ...actual.applied.spec, resources: { diskBytes: 64 * MI } };
    const p1 = plan({
      desired: new Map([['default/grow', { key: 'default/grow', namespace: 'default', name: 'grow', spec: desiredSpec, source: FILE_SOURCE }]]),
      actual: new Map([['default/grow', actual]]),
      complete: true,
    });
    assert.match(p1.actions[0]!.reason, /disk: Infeasible: .* of files in use does not fit in 64Mi/);
    // A restart with the smaller size keeps the data and the size.
    const pidFull = await restartWith('grow', 64 * MI);
    assert.equal((await st.runtime.get('default/grow'))!.disk?.sizeBytes, 128 * MI, 'infeasible at the start too: size kept');
    assert.match((await inContainer(pidFull, 'md5sum -c /keep.md5')).out, /OK/);

    // Free the space: now Deferred (not live), then done by the next start.
    await inContainer(pidFull, 'rm /fill && sync');
    // XFS frees an unlinked file's blocks in the background (inodegc): wait until statfs shows it.
    await waitFor('the space freed', async () => ((await st.runtime.get('default/grow'))!.disk?.usedBytes ?? Infinity) < 30 * MI);
    const later = await st.runtime.updateResources('default/grow', { diskBytes: 64 * MI });
    assert.equal(later.deferred[0]?.infeasible, undefined, JSON.stringify(later));
    assert.match(later.deferred[0]!.reason, /next restart/);
    const p2 = plan({
      desired: new Map([['default/grow', { key: 'default/grow', namespace: 'default', name: 'grow', spec: desiredSpec, source: FILE_SOURCE }]]),
      actual: new Map([['default/grow', (await st.runtime.get('default/grow'))!]]),
      complete: true,
    });
    assert.match(p2.actions[0]!.reason, /disk: Deferred to the next restart/);
    const pid2 = await restartWith('grow', 64 * MI);
    const after = (await st.runtime.get('default/grow'))!;
    assert.equal(after.disk?.sizeBytes, 64 * MI, 'the smaller size is in effect');
    assert.ok((await dfRoot(pid2)).size <= 64 * MI);
    const check = await inContainer(pid2, 'md5sum -c /keep.md5; test -e /etc/issue && echo issue-back || echo issue-still-deleted');
    assert.match(check.out, /keep: OK/);
    assert.match(check.out, /issue-still-deleted/, 'whiteouts survive the copy');
    assert.deepEqual(await readdir(dirOf('grow')).then((l) => l.filter((n) => /\.(new|old)$/.test(n))), [], 'no copy left');
  });

  it('keeps the private area across restart, replace, a new acetate process, a reboot, and a limit removed and added', async () => {
    const key = 'default/keep';
    let pid = await createRunning('keep', { resources: { diskBytes: 32 * MI } });
    await inContainer(pid, 'echo marker-1 > /marker');
    const read = async () => (await inContainer(pid, 'cat /marker')).out.trim();

    pid = await restartWith('keep', 32 * MI);
    assert.equal(await read(), 'marker-1', 'restart');

    // Replace with the same template (env changed): the image is kept.
    const cur = (await st.runtime.get(key))!;
    await st.runtime.stop(key, { graceSeconds: 0 });
    await st.runtime.remove(key, { keepPrivateArea: true });
    await st.runtime.create({ namespace: 'default', name: 'keep', spec: { ...cur.applied.spec, env: [{ name: 'X', value: '1' }] }, source: FILE_SOURCE });
    pid = (await st.runtime.start(key)).pid;
    assert.equal(await read(), 'marker-1', 'replace');

    // A new acetate process adopts the attached disk: same pid, usage read back, nothing to do.
    const rt2 = makeRuntime(st.dir);
    const adopted = (await rt2.get(key))!;
    assert.equal(adopted.process.pid, pid);
    assert.equal(adopted.disk?.sizeBytes, 32 * MI);
    assert.equal((await rt2.start(key)).pid, pid, 'start of a running container is a no-op');

    // A reboot: processes gone, the mount and loop device gone, the run dir emptied.
    const conmon = Number((await exec('cat', [path.join(st.dir, 'run', 'containers', 'default_keep', 'conmon.pid')])).stdout);
    process.kill(pid, 'SIGKILL');
    await waitFor('the container gone', () => !isAlive(pid));
    try {
      process.kill(conmon, 'SIGKILL');
    } catch {
      /* exited with its container */
    }
    await waitFor('conmon gone', () => !isAlive(conmon));
    await exec('umount', [path.join(dirOf('keep'), 'disk')]);
    for (const d of await loopsUnder(st.dir)) await exec('losetup', ['-d', d.name]);
    const runRoot = path.join(st.dir, 'run', 'runc', 'default_keep');
    await exec('runc', ['--root', path.join(st.dir, 'run', 'runc'), 'delete', '--force', 'default_keep']).catch(() => undefined);
    await rm(runRoot, { recursive: true, force: true });
    await unmountAll(layersDirOf(path.join(st.dir, 'run'), st.dir)); // the host view's layers' tmpfs (host-layer.ts)
    await rm(path.join(st.dir, 'run'), { recursive: true, force: true });
    assert.deepEqual(await mountLines('self', dirOf('keep')), []);
    const rt3 = makeRuntime(st.dir);
    pid = (await rt3.start(key)).pid;
    assert.equal(await read(), 'marker-1', 'reboot: re-attached from the record');
    assert.equal((await rt3.get(key))!.disk?.sizeBytes, 32 * MI);

    // The limit removed: the private area moves out at the next start; added again: back in.
    pid = await restartWith('keep', undefined);
    assert.equal(await read(), 'marker-1', 'moved out of the image');
    assert.equal((await st.runtime.get(key))!.disk, undefined);
    assert.deepEqual(await mountLines('self', dirOf('keep')), []);
    pid = await restartWith('keep', 48 * MI);
    assert.equal(await read(), 'marker-1', 'moved into a new image');
    assert.equal((await st.runtime.get(key))!.disk?.sizeBytes, 48 * MI);
  });

  it('a grow killed between truncate and xfs_growfs is seen (the filesystem is what counts) and finished', async () => {
    const pid = await createRunning('half', { resources: { diskBytes: 32 * MI } });
    // What a SIGKILL after `truncate` leaves: the file is larger, the filesystem is not.
    await exec('truncate', ['-s', String(48 * MI), path.join(dirOf('half'), 'disk.img')]);
    assert.equal((await st.runtime.get('default/half'))!.disk?.sizeBytes, 32 * MI, "the size in force is the filesystem's");
    const r = await st.runtime.updateResources('default/half', { diskBytes: 48 * MI });
    assert.deepEqual(r.deferred, []);
    assert.equal((await st.runtime.get('default/half'))!.disk?.sizeBytes, 48 * MI);
    assert.ok((await dfRoot(pid)).size > 40 * MI);
  });

  it('mounts privately on the node, out of sight of other containers, and removes everything on destroy', async () => {
    const a = await createRunning('a', { resources: { diskBytes: 16 * MI } });
    const b = await createRunning('b', { resources: { diskBytes: 16 * MI } });
    const host = await mountLines('self', `${dirOf('a')}/disk`);
    assert.equal(host.length, 1, 'mounted once on the node');
    assert.doesNotMatch(host[0]!, /shared:|master:/, 'private: no propagation');
    assert.deepEqual(await mountLines(b, dirOf('a')), [], "b does not see a's disk");
    assert.deepEqual(await mountLines(a, 'default_b'), [], "a does not see b's disk");
    assert.equal((await loopsUnder(st.dir)).length, 2);
    await st.runtime.stop('default/a', { graceSeconds: 0 });
    assert.equal((await mountLines('self', `${dirOf('a')}/disk`)).length, 1, 'a stopped container keeps its disk attached');
    await st.runtime.remove('default/a', { keepPrivateArea: false });
    await st.runtime.remove('default/b', { keepPrivateArea: false });
    // A loop device goes at its file system's last unmount: a runc of a test beside this one can hold a
    // copy of the mount for a moment (it copies the node's mount table), as leaks.ts allows for too.
    await waitFor('loop devices detached (autoclear at the last unmount)', async () => (await loopsUnder(st.dir)).length === 0);
    await assertNoLeaks(st.dir);
  });

  it('sweeps loop devices and mounts that killed acetates left, and refuses a disk larger than the free space', async () => {
    // A container dir without a record (a removal killed half way) with its image still mounted,
    // and a loop device attached to an image that nothing mounts.
    const dead = path.join(st.dir, 'containers', 'default_gone');
    await mkdir(path.join(dead, 'disk'), { recursive: true });
    await makeXfsImage(path.join(dead, 'disk.img'), 16 * MI);
    await exec('mount', ['-o', 'loop', path.join(dead, 'disk.img'), path.join(dead, 'disk')]);
    const stray = path.join(st.dir, 'containers', 'default_x');
    await mkdir(stray, { recursive: true });
    await writeFile(path.join(stray, 'disk.img'), '');
    await exec('truncate', ['-s', '16M', path.join(stray, 'disk.img')]);
    await exec('losetup', ['-f', path.join(stray, 'disk.img')]);
    assert.equal((await loopsUnder(st.dir)).length, 2);
    await st.runtime.sweepLeftovers();
    await waitFor('loop devices detached (autoclear at the last unmount)', async () => (await loopsUnder(st.dir)).length === 0);
    assert.deepEqual(await mountLines('self', dead), []);
    await rm(dead, { recursive: true });
    await rm(stray, { recursive: true });

    await st.runtime.create({ namespace: 'default', name: 'huge', spec: testSpec({ command: SLEEP, resources: { diskBytes: 2 ** 52 } }), source: FILE_SOURCE });
    await assert.rejects(
      st.runtime.start('default/huge'),
      /\/test\/containers\.yaml:1: spec\.resources\.disk: 4Pi is more than the state dir's filesystem can hold: .* refused/,
    );
    assert.deepEqual(await loopsUnder(st.dir), []);
  });
});
