/** preflight(): passes here (root, runc, conmon, overlayfs), and says how to fix each failure. */
import assert from 'node:assert/strict';
import { preflight } from '../../src/runtime/runc/preflight.js';
import { RuntimeUnavailableError } from '../../src/runtime/runtime.js';
import { makeRuntime, makeTmpStateDir, cleanupStateDir } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';

describe('runtime preflight', function () {
  this.timeout(30_000);
  let dir: string;

  before(async () => {
    dir = await makeTmpStateDir();
  });

  after(async () => {
    await cleanupStateDir(dir);
  });

  it('passes as root with runc and conmon installed', async () => {
    const r = await preflight();
    assert.match(r.runcPath, /\/runc$/);
    assert.match(r.conmonPath, /\/conmon$/);
    await makeRuntime(dir).preflight();
  });

  it('not root', async () => {
    await assert.rejects(preflight({ uid: 1000 }), (err: unknown) => {
      assert.ok(err instanceof RuntimeUnavailableError);
      assert.equal(err.message, 'acetate needs root: run it with sudo (or as root)');
      return true;
    });
  });

  it('runc or conmon missing', async () => {
    await assert.rejects(makeRuntime(dir, { runcPath: '/nonexistent/runc' }).preflight(), (err: unknown) => {
      assert.ok(err instanceof RuntimeUnavailableError);
      assert.match(err.message, /^runc not found.*: install it with `apt-get install -y runc conmon`$/);
      return true;
    });
    await assert.rejects(makeRuntime(dir, { conmonPath: 'no-such-conmon' }).preflight(), (err: unknown) => {
      assert.ok(err instanceof RuntimeUnavailableError);
      assert.match(err.message, /^conmon not found.*: install it with `apt-get install -y runc conmon`$/);
      return true;
    });
  });

  it('overlayfs missing', async () => {
    await assert.rejects(preflight({ filesystems: 'nodev\ttmpfs\n\text4\n' }), /overlayfs.*modprobe overlay/);
  });

  it('a runtime with a bogus runc path fails its operations with the same clear error', async () => {
    const rt = makeRuntime(dir, { runcPath: '/nonexistent/runc' });
    await rt.create({ namespace: 'default', name: 'x', spec: testSpec(), source: FILE_SOURCE });
    await assert.rejects(rt.start('default/x'), RuntimeUnavailableError);
    await assert.rejects(rt.list(), /runc not found/);
  });
});
