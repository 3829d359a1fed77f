/**
 * A Localhost seccomp profile is a file the node's administrator put in a profile dir: one a
 * tenant wrote (its private area lies on the node) is refused, and no profile file can hang a
 * start (a FIFO) or fill memory (a huge file).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readProfileFile } from '../../src/runtime/walls/seccomp-file.js';
import { seccompFor } from '../../src/runtime/walls/seccomp.js';
import { withTmpDir } from '../support/tmpdir.js';

const ALLOW_ALL = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}';

describe('seccomp profile files', () => {
  it('Localhost: only a root-owned, root-writable regular file inside a node profile dir; a link out of it is judged by its target', () =>
    withTmpDir(async (d) => {
      const dirs = path.join(d, 'profiles');
      const tenant = path.join(d, 'upper', 'tmp');
      await mkdir(dirs);
      await mkdir(tenant, { recursive: true });
      await writeFile(path.join(dirs, 'ok.json'), ALLOW_ALL, { mode: 0o644 });
      await writeFile(path.join(tenant, 'allow.json'), ALLOW_ALL);
      await symlink(path.join(tenant, 'allow.json'), path.join(dirs, 'link.json'));
      const env = { ACETATE_SECCOMP_DIRS: dirs };
      assert.equal(readProfileFile(path.join(dirs, 'ok.json'), { localhost: true, env }), ALLOW_ALL);
      assert.throws(() => readProfileFile(path.join(tenant, 'allow.json'), { localhost: true, env }), /is not in one of this node's profile dirs/);
      assert.throws(() => readProfileFile(path.join(dirs, 'link.json'), { localhost: true, env }), /is not in one of this node's profile dirs/);
      // The default dirs do not hold a tenant's file either.
      assert.throws(() => readProfileFile(path.join(tenant, 'allow.json'), { localhost: true, env: {} }), /\/etc\/acetate\/seccomp, \/usr\/share\/containers/);
      await chmod(path.join(dirs, 'ok.json'), 0o664);
      assert.throws(() => readProfileFile(path.join(dirs, 'ok.json'), { localhost: true, env }), /owned by root and writable by root only/);
      await chmod(path.join(dirs, 'ok.json'), 0o644);
      await chown(path.join(dirs, 'ok.json'), 1_000_000_000, 1_000_000_000);
      assert.throws(() => readProfileFile(path.join(dirs, 'ok.json'), { localhost: true, env }), /owned by root/);
      // Through seccompFor, as a container's spec names it.
      assert.throws(
        () => seccompFor({ type: 'Localhost', localhostProfile: path.join(tenant, 'allow.json') }, { capabilities: [], privileged: false }),
        /not in one of this node's profile dirs/,
      );
    }));

  it('any profile: a FIFO is refused at once (no wait for a writer), a file over 1 MiB is refused', () =>
    withTmpDir(async (d) => {
      execFileSync('mkfifo', [path.join(d, 'fifo')]);
      const started = Date.now();
      assert.throws(() => readProfileFile(path.join(d, 'fifo'), { localhost: false }), /is not a regular file/);
      assert.ok(Date.now() - started < 5000);
      await writeFile(path.join(d, 'big.json'), Buffer.alloc(1024 * 1024 + 1, 0x20));
      assert.throws(() => readProfileFile(path.join(d, 'big.json'), { localhost: false }), /more than the 1048576 a profile may have/);
    }));
});
