/**
 * A container's dir made by an earlier acetate was owned by its range: a link planted there as its
 * `upper/` or `work/` must not make the next start hand the node file it points at to the range.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
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
});
