/**
 * A running container can fill its own disk, so that a marker for node data made after its start
 * cannot be placed (host-view-watch.ts): the failure is reported with its cause and the container
 * is tried again on its own, so the data is hidden once there is room, not at the node's next change.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fillDisk, smallDiskPerTest } from '../support/small-disk.js';
import { HostViewWatch, RETRY_MS } from '../../src/runtime/walls/host-view-watch.js';
import { TARGET_FILE } from '../../src/runtime/walls/host-layer.js';
import type { HostView, ViewEntry } from '../../src/runtime/walls/host-masks.js';
import { waitFor } from '../support/wait.js';

describe('host-view watcher: a container whose markers could not be placed is tried again (host-view-watch.ts)', function () {
  this.timeout(60_000);
  const disk = smallDiskPerTest('acetate-view-retry-', { size: '256k', inodes: 32 });

  it('reports ENOSPC naming the container, and places the marker once the container made room', async () => {
    const { root, upper } = disk();
    const hostRoot = path.join(root, 'host');
    mkdirSync(path.join(hostRoot, 'var', 'lib', 'newsvc'), { recursive: true });
    const containersDir = path.join(root, 'containers');
    const containerDir = path.join(containersDir, 'default_full');
    mkdirSync(containerDir, { recursive: true });
    writeFileSync(path.join(containerDir, TARGET_FILE), JSON.stringify({ upper, idBase: 0 }));
    mkdirSync(path.join(upper, 'var', 'lib'), { recursive: true });
    // The container has taken every inode of its disk.
    await fillDisk(upper);
    const entries = [{ path: '/var/lib/newsvc', action: { kind: 'absent' }, why: 'node data', source: 'default' }] as unknown as ViewEntry[];
    const view: HostView = { entries, shown: [], tmpfs: [] };
    const errors: string[] = [];
    const watch = new HostViewWatch({
      hostRoot,
      stateDir: root,
      containersDir,
      layersDir: path.join(root, 'host-layers'),
      view: () => Promise.resolve(view),
      onError: (err) => errors.push((err as Error).message),
      dropDentries: () => Promise.resolve(),
    });
    const marker = path.join(upper, 'var', 'lib', 'newsvc');
    try {
      watch.start();
      await waitFor(() => Promise.resolve(errors.length > 0), { what: 'the failure reported', timeoutMs: 10_000 });
      assert.match(errors[0]!, /default_full.*tried again.*No space left on device/s);
      assert.throws(() => lstatSync(marker), /ENOENT/);
      // The container frees an inode: the next try places the whiteout, with no change on the node.
      rmSync(path.join(upper, 'f0'));
      await waitFor(() => Promise.resolve(lstatSync(marker, { throwIfNoEntry: false })?.isCharacterDevice() === true), {
        what: 'the whiteout placed at the retry',
        timeoutMs: RETRY_MS * 3,
      });
    } finally {
      watch.close();
      await watch.settled();
    }
  });
});
