/**
 * A shrink is decided on what the container's files use, not on XFS's own metadata, which grows
 * with the filesystem (an empty 10Gi disk uses 103 MiB for itself; one grown from 16Mi to 40Gi,
 * 440 MiB, as it then has 2560 allocation groups). Real loop devices and XFS; thin images so that
 * a 40Gi disk costs the node only what is written.
 */
import { RESERVE_BYTES } from '../../src/runtime/disk/room-reserve.js';
import assert from 'node:assert/strict';
import { hashOf } from '../../src/api/hash.js';
import type { NormalizedSpec } from '../../src/api/types.js';
import { plan } from '../../src/plan/plan.js';
import { dfRoot, inContainer, MI } from '../support/disk.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { diskText } from '../../src/cli/commands/describe.js';
import { makeXfsImage, mountImage, unmountImage } from '../../src/runtime/disk/xfs-image.js';
import { xfsOverheadBytes } from '../../src/runtime/disk/xfs-fit.js';
import { mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';

const SLEEP = ['sh', '-c', 'exec sleep 100000'];
const GI = 2 ** 30;

describe('resources.disk shrink counts the files, not XFS metadata (real loop devices, XFS)', function () {
  this.timeout(180_000);
  let st: TmpState;
  const saved = process.env.ACETATE_DISK_PROVISIONING;

  beforeEach(async () => {
    process.env.ACETATE_DISK_PROVISIONING = 'thin';
    st = await tmpState('acetate-disk-shrink-');
  });

  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
    if (saved === undefined) delete process.env.ACETATE_DISK_PROVISIONING;
    else process.env.ACETATE_DISK_PROVISIONING = saved;
  });

  async function createRunning(name: string, spec: Partial<NormalizedSpec>): Promise<number> {
    await st.runtime.create({ namespace: 'default', name, spec: testSpec({ command: SLEEP, ...spec }), source: FILE_SOURCE });
    return (await st.runtime.start(`default/${name}`)).pid;
  }

  /** What execute does for a restart: stop, record the wanted spec, start. */
  async function restartWith(name: string, diskBytes: number): Promise<number> {
    const key = `default/${name}`;
    const cur = (await st.runtime.get(key))!;
    await st.runtime.stop(key, { graceSeconds: 0 });
    const spec = { ...cur.applied.spec, resources: { ...cur.applied.spec.resources, diskBytes } };
    await st.runtime.recordApplied(key, { ...cur.applied, spec, specHash: hashOf(spec) });
    return (await st.runtime.start(key)).pid;
  }

  async function planReason(name: string, diskBytes: number): Promise<string> {
    const key = `default/${name}`;
    const actual = (await st.runtime.get(key))!;
    const spec = { ...actual.applied.spec, resources: { ...actual.applied.spec.resources, diskBytes } };
    const p = plan({
      desired: new Map([[key, { key, namespace: 'default', name, spec, source: FILE_SOURCE }]]),
      actual: new Map([[key, actual]]),
      complete: true,
    });
    return p.actions.map((a) => a.reason).join('; ');
  }

  it("XFS's own share per size is what the README documents, and the shrink estimate is above it", async () => {
    // README "Disk limits": size → free in the empty filesystem (MiB), as df inside shows it.
    const documented: [number, number][] = [
      [16 * MI, 9.7],
      [64 * MI, 54.8],
      [256 * MI, 235.9],
      [GI, 921],
      [10 * GI, 10072.8],
    ];
    const dir = await mkdtemp(path.join(st.dir, 'xfs-sizes-'));
    try {
      for (const [size, free] of documented) {
        const img = path.join(dir, 'probe.img');
        const mnt = path.join(dir, 'probe');
        await makeXfsImage(img, size);
        await mountImage(img, mnt);
        try {
          const s = await statfs(mnt);
          const avail = (s.bavail * s.bsize) / MI;
          assert.ok(Math.abs(avail - free) < 1, `${size / MI}Mi: ${avail.toFixed(1)} MiB free, documented ${free}`);
          assert.ok(size - s.bavail * s.bsize <= xfsOverheadBytes(size), `${size / MI}Mi: the estimate covers XFS's share`);
        } finally {
          await unmountImage(mnt);
          await rm(img, { force: true });
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an empty 10Gi disk shrinks to 64Mi (its 100 MiB of XFS metadata is not data), keeping its files', async () => {
    let pid = await createRunning('empty', { resources: { diskBytes: 10 * GI } });
    await inContainer(pid, 'echo kept > /marker && sync');
    const u = (await st.runtime.get('default/empty'))!.disk!;
    assert.ok(u.usedBytes > 90 * MI, `statfs counts XFS's own ~103 MiB as used: ${JSON.stringify(u)}`);
    assert.ok(u.filesBytes !== undefined && u.filesBytes < MI, `the files use almost nothing: ${JSON.stringify(u)}`);
    assert.match(diskText(u), /Mi by files, .*Mi by XFS itself, 1Mi kept by acetate\)/);
    assert.equal(u.reservedBytes, RESERVE_BYTES, "acetate's room on the disk (disk/room-reserve.ts), not the files'");

    assert.match(await planReason('empty', 64 * MI), /disk: Deferred to the next restart/);
    const live = await st.runtime.updateResources('default/empty', { diskBytes: 64 * MI });
    assert.equal(live.deferred[0]?.infeasible, undefined, JSON.stringify(live));

    pid = await restartWith('empty', 64 * MI);
    assert.equal((await st.runtime.get('default/empty'))!.disk?.sizeBytes, 64 * MI, 'the smaller size is in force');
    assert.ok((await dfRoot(pid)).size <= 64 * MI, 'df inside shows it');
    assert.equal((await inContainer(pid, 'cat /marker')).out.trim(), 'kept');
  });

  it('a disk made before XFS metadata was recorded gets it measured at its next start, and can then shrink', async () => {
    let pid = await createRunning('legacy', { resources: { diskBytes: 10 * GI } });
    await inContainer(pid, 'head -c 5242880 /dev/urandom > /five && sync && md5sum /five > /five.md5');
    // What an earlier acetate wrote: only the log's size.
    const meta = path.join(st.dir, 'containers', 'default_legacy', 'disk', '.acetate-disk.json');
    const { logBytes } = JSON.parse(await readFile(meta, 'utf8')) as { logBytes: number };
    await writeFile(meta, `${JSON.stringify({ logBytes })}\n`);
    const before = (await st.runtime.get('default/legacy'))!.disk!;
    assert.equal(before.filesBytes, undefined, 'without the record everything used counts');
    assert.match(await planReason('legacy', 64 * MI), /disk: Infeasible: 10\d\.\dMi of files in use/);

    await restartWith('legacy', 10 * GI); // a start: measured then
    const after = (await st.runtime.get('default/legacy'))!.disk!;
    // At least the file itself (the upper dir holds no host-view marker since they are a shared layer).
    assert.ok(after.filesBytes! >= 5 * MI && after.filesBytes! < 6 * MI, `the files' use, measured: ${JSON.stringify(after)}`);
    pid = await restartWith('legacy', 64 * MI);
    assert.equal((await st.runtime.get('default/legacy'))!.disk?.sizeBytes, 64 * MI);
    assert.match((await inContainer(pid, 'md5sum -c /five.md5')).out, /five: OK/);
  });

  it('grown 16Mi → 40Gi live with 100 MiB of files, it returns to 256Mi with the data; 100Mi stays Infeasible', async () => {
    let pid = await createRunning('grown', { resources: { diskBytes: 16 * MI } });
    const r = await st.runtime.updateResources('default/grown', { diskBytes: 40 * GI });
    assert.deepEqual(r.deferred, []);
    assert.equal(r.limits.diskBytes, 40 * GI);
    const w = await inContainer(pid, 'head -c 104857600 /dev/urandom > /data.bin && sync && md5sum /data.bin > /data.md5; echo rc=$?');
    assert.match(w.out, /rc=0/);
    const u = (await st.runtime.get('default/grown'))!.disk!;
    assert.ok(u.usedBytes > 400 * MI, `statfs counts the grown filesystem's ~440 MiB of metadata as used: ${JSON.stringify(u)}`);
    assert.ok(u.filesBytes! > 99 * MI && u.filesBytes! < 110 * MI, `the files' use is the 100 MiB written: ${JSON.stringify(u)}`);

    assert.match(await planReason('grown', 256 * MI), /disk: Deferred to the next restart/);
    assert.match(await planReason('grown', 100 * MI), /disk: Infeasible: 10\d(\.\d)?Mi of files in use does not fit in 100Mi/);

    pid = await restartWith('grown', 256 * MI);
    const after = (await st.runtime.get('default/grown'))!;
    assert.equal(after.disk?.sizeBytes, 256 * MI);
    assert.ok(after.disk!.filesBytes! > 99 * MI && after.disk!.filesBytes! < 110 * MI, JSON.stringify(after.disk));
    assert.match((await inContainer(pid, 'md5sum -c /data.md5')).out, /data.bin: OK/);
  });
});
