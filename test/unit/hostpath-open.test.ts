import assert from 'node:assert/strict';
import { mkdir, readlink, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HostPathRefusedError, openHostPaths, type HostPathRule } from '../../src/runtime/walls/hostpath-open.js';
import { OciConfigError } from '../../src/runtime/walls/errors.js';
import { failureKind } from '../../src/contracts/errors.js';
import { withTmpDir } from '../support/tmpdir.js';

/** The dir an opened source leads to (what a bind of it mounts). */
const target = (source: string) => readlink(source);

describe('hostPaths opened and checked at a start (walls/hostpath-open.ts)', () => {
  const rule = (allowed: string, level: HostPathRule['level'] = 'baseline'): HostPathRule => ({ level, allowedHostPaths: [allowed], why: 'test setting' });

  it('an allowed dir is opened as it is; a dir swapped for a symlink out of the allowlist is refused, naming container, field and rule', () =>
    withTmpDir(async (dir) => {
      const allowed = path.join(dir, 'allowed');
      const data = path.join(allowed, 'data');
      const sensitive = path.join(dir, 'sensitive');
      await mkdir(data, { recursive: true });
      await mkdir(sensitive);
      await writeFile(path.join(data, 'f'), 'x');
      const ok = openHostPaths('tenant-a/web', [{ hostPath: data }], { hostRoot: '/', own: [], rule: rule(allowed) });
      try {
        assert.equal(await target(ok.sources[0]!), data);
        // What was opened stays what is bound, whatever the name means later.
        await rename(data, `${data}.moved`);
        await symlink(sensitive, data);
        assert.equal(await target(ok.sources[0]!), `${data}.moved`);
      } finally {
        ok.close();
      }
      let err: unknown;
      try {
        openHostPaths('tenant-a/web', [{ hostPath: data }], { hostRoot: '/', own: [], rule: rule(allowed) });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof HostPathRefusedError, String(err));
      assert.equal(err.container, 'tenant-a/web');
      assert.equal(err.field, 'spec.mounts[0].hostPath');
      assert.equal(err.rule, 'hostPathVolumes');
      assert.equal(err.reason, 'HostPathRefused');
      assert.match(err.message, new RegExp(`leads to "${sensitive}"`));
      assert.equal(failureKind(err), 'transient', 'retried: the node changed, not the manifest');
      // privileged: no allowlist, only acetate's own dirs.
      const p = openHostPaths('infra/web', [{ hostPath: data }], { hostRoot: '/', own: [], rule: rule(allowed, 'privileged') });
      assert.equal(await target(p.sources[0]!), sensitive);
      p.close();
    }));

  it("refuses a path that leads into or above acetate's dirs, and names a missing one", () =>
    withTmpDir(async (dir) => {
      const state = path.join(dir, 'state');
      await mkdir(path.join(state, 'containers'), { recursive: true });
      await symlink(path.join(state, 'containers'), path.join(dir, 'link'));
      const own = [{ dir: state, what: 'state dir' }];
      for (const hostPath of [path.join(dir, 'link'), dir]) {
        assert.throws(
          () => openHostPaths('default/web', [{ hostPath }], { hostRoot: '/', own }),
          (e: unknown) => e instanceof HostPathRefusedError && e.rule === 'acetateDirs' && e.message.includes(`acetate's state dir ${state}`),
        );
      }
      assert.throws(
        () => openHostPaths('default/web', [{ hostPath: path.join(dir, 'missing') }], { hostRoot: '/', own }),
        (e: unknown) => e instanceof OciConfigError && /spec\.mounts\[0\]\.hostPath: '.*missing' does not exist on this node/.test((e as Error).message),
      );
    }));
});
