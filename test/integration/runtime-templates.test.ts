/**
 * TemplateStore with real files and tar, and containers whose lower layer is an imported template.
 */
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readlink, rm, stat, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { makeBusyboxRootfs, makeBusyboxTarball } from '../support/busybox-rootfs.js';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

describe('TemplateStore and template-based containers', function () {
  this.timeout(60_000);
  let st: TmpState;
  let work: string;

  before(async () => {
    st = await tmpState();
    work = await mkdtemp('/tmp/acetate-tpl-src-');
  });

  after(async () => {
    await st.cleanup();
    await rm(work, { recursive: true, force: true });
    await assertNoLeaks(st.dir, { dirRemoved: true });
  });

  it('lists the built-in host template (the node /) and resolves it', async () => {
    const list = await st.templates.list();
    assert.deepEqual(list, [{ name: 'host', path: '/', builtIn: true }]);
    assert.equal(await st.templates.resolve('host'), '/');
  });

  it('the host template is the host root given (ACETATE_HOST_ROOT, e.g. /host in a pod)', async () => {
    const store = new TemplateStore({ stateDir: st.dir, hostRoot: '/host' });
    assert.equal(await store.resolve('host'), '/host');
    assert.equal((await store.list()).find((t) => t.name === 'host')!.path, '/host');
  });

  it('imports a directory, preserving modes and symlinks', async () => {
    const src = await makeBusyboxRootfs(path.join(work, 'dir-src'));
    await writeFile(path.join(src, 'etc', 'secret'), 'x');
    await chmod(path.join(src, 'etc', 'secret'), 0o600);
    const info = await st.templates.import('busybox', src);
    assert.equal(info.name, 'busybox');
    assert.equal(info.path, path.join(st.dir, 'templates', 'busybox', 'rootfs'));
    assert.ok(info.sizeBytes! > 500_000, 'size counts the busybox binary');
    assert.equal(await st.templates.resolve('busybox'), info.path);
    assert.equal(await readlink(path.join(info.path, 'bin', 'sh')), 'busybox');
    assert.equal((await stat(path.join(info.path, 'etc', 'secret'))).mode & 0o777, 0o600);
    assert.equal((await stat(path.join(info.path, 'tmp'))).mode & 0o7777, 0o1777);
    const names = (await st.templates.list()).map((t) => t.name);
    assert.deepEqual(names, ['host', 'busybox']);
    const listed = (await st.templates.list()).find((t) => t.name === 'busybox')!;
    assert.equal(listed.builtIn, false);
    assert.ok(listed.importedAt && !Number.isNaN(Date.parse(listed.importedAt)));
    await assert.rejects(st.templates.import('busybox', src), /already installed/);
  });

  it('imports a .tar.gz rootfs tarball', async () => {
    const tarball = await makeBusyboxTarball(path.join(work, 'tar-src'), path.join(work, 'rootfs.tar.gz'));
    const info = await st.templates.import('busybox-tgz', tarball);
    assert.ok((await lstat(path.join(info.path, 'bin', 'sh'))).isSymbolicLink());
    assert.ok((await stat(path.join(info.path, 'bin', 'busybox'))).mode & 0o100);
    assert.equal(await readFile(path.join(info.path, 'etc', 'os-release'), 'utf8'), 'ID=busybox\nNAME="acetate test busybox"\n');
    assert.deepEqual(
      (await st.templates.list()).map((t) => t.name),
      ['host', 'busybox', 'busybox-tgz'],
    );
  });

  it('refuses bad names, unknown templates and unsupported sources with clear errors', async () => {
    for (const bad of ['Busybox', '-x', 'x-', 'a/b', '..', '']) {
      await assert.rejects(st.templates.import(bad, work), /invalid template name/, bad);
    }
    await assert.rejects(st.templates.import('host', work), /built-in/);
    await assert.rejects(st.templates.resolve('alpine'), {
      message: "template 'alpine' is not installed on this node (acetate template import alpine SOURCE)",
    });
    await writeFile(path.join(work, 'notes.txt'), 'hi');
    await assert.rejects(st.templates.import('notes', path.join(work, 'notes.txt')), /expected a directory or a .tar/);
    await assert.rejects(st.templates.import('nothing', path.join(work, 'missing')), /does not exist/);
    await assert.rejects(st.templates.remove('host', { inUseBy: [] }), /built-in/);
    await assert.rejects(st.templates.remove('alpine', { inUseBy: [] }), /not installed/);
    assert.ok(!(await st.templates.list()).some((t) => t.name === 'notes' || t.name === 'nothing'));
  });

  it('runs a container on an imported template; the template stays untouched', async () => {
    await st.runtime.create({
      namespace: 'default',
      name: 'bb',
      spec: testSpec({ template: 'busybox', command: ['sh', '-c', 'cat /etc/os-release; echo changed > /etc/os-release; echo done; sleep 1000'] }),
      source: FILE_SOURCE,
    });
    await st.runtime.start('default/bb');
    const logs = await waitFor('output', async () => {
      const t = await st.runtime.logs('default/bb');
      return t.includes('done') ? t : undefined;
    });
    assert.match(logs, /acetate test busybox/);
    assert.equal(await readFile(path.join(st.dir, 'templates', 'busybox', 'rootfs', 'etc', 'os-release'), 'utf8'), 'ID=busybox\nNAME="acetate test busybox"\n');
    assert.equal(await readFile(path.join(st.dir, 'containers', 'default_bb', 'upper', 'etc', 'os-release'), 'utf8'), 'changed\n');
  });

  it('refuses to remove a template in use, then removes it', async () => {
    const inUseBy = (await st.runtime.list()).filter((c) => c.applied.spec.template === 'busybox').map((c) => c.key);
    assert.deepEqual(inUseBy, ['default/bb']);
    await assert.rejects(st.templates.remove('busybox', { inUseBy }), {
      message: "template 'busybox' is in use by default/bb; remove those containers first",
    });
    await st.runtime.remove('default/bb', { keepPrivateArea: false });
    await st.templates.remove('busybox', { inUseBy: [] });
    await st.templates.remove('busybox-tgz', { inUseBy: [] });
    assert.deepEqual(
      (await st.templates.list()).map((t) => t.name),
      ['host'],
    );
    await assert.rejects(
      st.runtime.create({ namespace: 'default', name: 'bb2', spec: testSpec({ template: 'busybox' }), source: FILE_SOURCE }),
      /not installed/,
    );
    await assertNoLeaks(st.dir);
  });

  it('a fresh TemplateStore on the same state dir sees the same templates', async () => {
    const src = await makeBusyboxRootfs(path.join(work, 'again'));
    await st.templates.import('again', src);
    assert.deepEqual(
      (await new TemplateStore({ stateDir: st.dir }).list()).map((t) => t.name),
      ['host', 'again'],
    );
  });
});
