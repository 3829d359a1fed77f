/**
 * A container's dir made by an earlier acetate was owned by its range: a link planted there as its
 * `upper/` or `work/` must not make the next start hand the node file it points at to the range.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preparePrivateArea, userNamespaceFor, UserNamespaceError } from '../../src/runtime/walls/userns.js';
import { writeIds } from '../../src/runtime/walls/ids-file.js';

const RANGE = { hostID: 3_900_000_000, size: 65_536 };

describe('the private area is prepared without following a link (userns.ts preparePrivateArea)', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'acetate-area-links-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  for (const which of ['upper', 'work'] as const) {
    it(`${which}/ a symlink to a node dir: refused, the node dir keeps its owner`, async () => {
      const node = path.join(root, 'node-etc');
      mkdirSync(node, { mode: 0o755 });
      const dir = path.join(root, 'containers', 'default_a');
      mkdirSync(dir, { recursive: true });
      for (const d of ['upper', 'work']) {
        if (d === which) symlinkSync(node, path.join(dir, d));
        else mkdirSync(path.join(dir, d));
      }
      // Already the range's (no re-own, which would empty work/ and so remove a link there).
      await writeIds(dir, { base: RANGE.hostID, size: RANGE.size, range: RANGE });
      const pa = { dir, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), rootfs: path.join(dir, 'rootfs') };
      await assert.rejects(preparePrivateArea(pa, userNamespaceFor(false, RANGE)), (err: unknown) => {
        assert.ok(err instanceof UserNamespaceError, String(err));
        assert.match((err as Error).message, /not a directory/);
        return true;
      });
      assert.equal(statSync(node).uid, 0, 'the node dir is still root’s');
      assert.equal(statSync(node).gid, 0);
      assert.ok(lstatSync(path.join(dir, which)).isSymbolicLink(), 'the link is left for the operator to see');
    });
  }

  it('entries the range left in the container dir: a set-id file is made root’s without its set-id bits, a link is removed', async () => {
    const dir = path.join(root, 'containers', 'default_b');
    for (const d of ['upper', 'work']) mkdirSync(path.join(dir, d), { recursive: true });
    await writeIds(dir, { base: RANGE.hostID, size: RANGE.size, range: RANGE });
    // What a root of the range that got out could leave in a container dir of an earlier acetate
    // (the range's then): its own setuid copy of a program, and links to node files.
    const evil = path.join(dir, 'evil');
    copyFileSync('/usr/bin/id', evil);
    chownSync(evil, RANGE.hostID, RANGE.hostID);
    chmodSync(evil, 0o4777);
    const node = path.join(root, 'node-machine-id');
    writeFileSync(node, 'the node\n', { mode: 0o444 });
    symlinkSync(node, path.join(dir, 'machine-id'));
    await preparePrivateArea(
      { dir, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), rootfs: path.join(dir, 'rootfs') },
      userNamespaceFor(false, RANGE),
    );
    const st = statSync(evil);
    assert.deepEqual([st.uid, st.gid], [0, 0]);
    assert.equal(st.mode & 0o7000, 0, `no set-id bit left (mode ${(st.mode & 0o7777).toString(8)})`);
    assert.equal(st.mode & 0o022, 0, 'not writable by group or others');
    assert.equal(existsSync(path.join(dir, 'machine-id')), false, 'the link is gone: acetate makes none there');
    assert.equal(readFileSync(node, 'utf8'), 'the node\n');
  });
});
