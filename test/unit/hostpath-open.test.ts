import assert from 'node:assert/strict';
import { lchown, mkdir, readlink, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HostPathRefusedError, openHostPaths, type HostPathRule } from '../../src/runtime/walls/hostpath-open.js';
import { OciConfigError } from '../../src/runtime/walls/errors.js';
import { otherInstanceDirs, registerInstance } from '../../src/runtime/walls/instances.js';
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

  it('the allowed dir itself swapped for a symlink: the opened path must lie where the entry led when first used (finding 7)', () =>
    withTmpDir(async (dir) => {
      const allowed = path.join(dir, 'shared');
      const victim = path.join(dir, 'victim');
      await mkdir(path.join(allowed, 'data'), { recursive: true });
      await mkdir(path.join(victim, 'data'), { recursive: true });
      const first = openHostPaths('tenant-a/web', [{ hostPath: path.join(allowed, 'data') }], { hostRoot: '/', own: [], rule: rule(allowed) });
      first.close();
      await rename(allowed, `${allowed}.orig`);
      await symlink(victim, allowed);
      assert.throws(
        () => openHostPaths('tenant-a/web', [{ hostPath: path.join(allowed, 'data') }], { hostRoot: '/', own: [], rule: rule(allowed) }),
        (e: unknown) =>
          e instanceof HostPathRefusedError &&
          e.rule === 'hostPathVolumes' &&
          e.message.includes(`leads to "${victim}/data"`) &&
          e.message.includes(`${allowed} now leads to ${victim}, not followed`),
      );
    }));

  it('an allowed dir reached through a symlink not owned by root allows nothing, even when first used after the swap', () =>
    withTmpDir(async (dir) => {
      const victim = path.join(dir, 'victim');
      await mkdir(path.join(victim, 'data'), { recursive: true });
      const allowed = path.join(dir, 'planted');
      await symlink(victim, allowed);
      await lchown(allowed, 1000, 1000);
      assert.throws(
        () => openHostPaths('tenant-a/web', [{ hostPath: path.join(allowed, 'data') }], { hostRoot: '/', own: [], rule: rule(allowed) }),
        (e: unknown) =>
          e instanceof HostPathRefusedError &&
          e.rule === 'hostPathVolumes' &&
          e.message.includes(`not counted: ${allowed} (${allowed} is a symlink owned by uid 1000, not root)`),
      );
      // The node's own (root's) symlinks stay usable in the setting.
      const rootLink = path.join(dir, 'rootlink');
      await symlink(victim, rootLink);
      openHostPaths('tenant-a/web', [{ hostPath: path.join(rootLink, 'data') }], { hostRoot: '/', own: [], rule: rule(rootLink) }).close();
    }));

  it("refuses a path into or above another registered instance's state or run dir, or a state dir the id records name (finding 6b)", () =>
    withTmpDir(async (dir) => {
      const registry = path.join(dir, 'instances');
      const other = { stateDir: path.join(dir, 'b', 'state'), runDir: path.join(dir, 'b', 'run') };
      const upper = path.join(other.stateDir, 'containers', 'default_ta', 'upper');
      await mkdir(upper, { recursive: true });
      await mkdir(other.runDir, { recursive: true });
      await registerInstance(other, registry);
      const byRecords = path.join(dir, 'c', 'state');
      await mkdir(byRecords, { recursive: true });
      const own = await otherInstanceDirs('/', [byRecords, '/', 'relative'], registry);
      const cases: [string, string][] = [
        [upper, `state dir of an instance on this node (registered in ${registry}) ${other.stateDir}`],
        [path.join(dir, 'b'), `state dir of an instance on this node (registered in ${registry}) ${other.stateDir}`],
        [other.runDir, `run dir of an instance on this node (registered in ${registry}) ${other.runDir}`],
        [byRecords, `state dir of an instance on this node (named by the node id records) ${byRecords}`],
      ];
      for (const [hostPath, named] of cases)
        assert.throws(
          () => openHostPaths('default/web', [{ hostPath }], { hostRoot: '/', own, rule: rule(dir) }),
          (e: unknown) => e instanceof HostPathRefusedError && e.rule === 'acetateDirs' && e.message.includes(`acetate's ${named}`),
          hostPath,
        );
      // Beside them (and '/' in a record refusing nothing else): allowed.
      await mkdir(path.join(dir, 'shared'));
      openHostPaths('default/web', [{ hostPath: path.join(dir, 'shared') }], { hostRoot: '/', own, rule: rule(dir) }).close();
    }));
});
