/**
 * Idmapped layers (issue 23): with a user namespace, every kind of template (the host template,
 * an imported one, an image) is mounted idmapped into the container's range: the container's
 * root sees the layers' root-owned files as its own, what it writes is owned on the node by its
 * range, the layers are neither copied nor chowned (two containers of one image with different
 * ranges use the one copy), and no idmapped mount is left on the node while it runs or after.
 */
import assert from 'node:assert/strict';
import { chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { exec } from '../../src/util/exec.js';
import { IDMAP_HELPER, IdmapError, mountIdmappedLayers, releaseIdmappedLayers } from '../../src/runtime/walls/idmap.js';
import { userNamespaceFor } from '../../src/runtime/walls/userns.js';
import { runCli } from '../support/cli.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { shellManifest } from '../support/manifest.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';
import { waitFor } from '../support/wait.js';

/** The node's pool for these tests (ACETATE_USERNS_RANGE is read as the pool): two ranges of 65536. */
const POOL = '1300000000:131072';

/** uid, gid and ctime of every file under dir (not following symlinks): what a chown would change. */
async function owners(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const stack = [dir];
  while (stack.length) {
    const p = stack.pop()!;
    const st = await lstat(p);
    out.set(p, `${st.uid}:${st.gid}:${st.ctimeMs}`);
    if (st.isDirectory()) for (const e of await readdir(p)) stack.push(path.join(p, e));
  }
  return out;
}

/**
 * Every mount under root (the test's state, run and layer dirs), idmapped or not. Only this test's:
 * other test files run at the same time, and a container of theirs starting holds its layers
 * idmapped for a moment.
 */
async function nodeMountsOf(root: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.filter((l) => l.includes(root));
}

async function bytes(dir: string): Promise<number> {
  return Number((await exec('du', ['-sb', dir])).stdout.split('\t')[0]);
}

describe('idmapped layers for user namespaces (real runc)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let image: string;
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  const cli = (args: string[]) =>
    runCli(args, { stateDir, env: { ACETATE_RUN_DIR: runDir, ACETATE_USERNS_RANGE: POOL, ACETATE_REGISTRIES_CONF: reg.registriesConf } });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const logs = async (name: string) => (await cli(['logs', name])).stdout;
  const waitLog = (name: string, text: string) => waitFor(async () => (await logs(name)).includes(text), { what: `${name} logs '${text}'`, timeoutMs: 60_000 });
  const upper = (name: string) => path.join(stateDir, 'containers', `default_${name}`, 'upper');
  /** The first host id of the container's user namespace, from its own /proc/self/uid_map. */
  const hostIdOf = (out: string) => {
    const m = /map=\s*0\s+(\d+)\s+65536/.exec(out);
    assert.ok(m, `uid_map in:\n${out}`);
    return Number(m[1]);
  };
  // What each container prints: its uid_map, how it sees a root-owned file of its layers, and a write.
  const probe = (file: string) =>
    `echo map=$(cat /proc/self/uid_map); echo owner=$(stat -c %u:%g ${file}); echo mine > /written && echo wrote; echo done; exec sleep 1000000`;

  before(async () => {
    reg = await startRegistry();
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-idmap-', { userns: true }));
    const img = await buildImage(path.join(root, 'img'), testImageLayers('v1'), TEST_IMAGE_CONFIG);
    image = `${reg.host}/test/idmap:v1`;
    await pushLayout(img.layout, image);
  });
  after(async () => {
    await destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply });
    await stopRegistryAndAssertGone(reg);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
    await exec('mkdir', [dir]);
    assert.equal((await apply()).code, 0);
    assert.deepEqual(await nodeMountsOf(root), [], 'no mount of the instance (idmapped or other) is left after destroy');
  });

  it('host template: the node root files are root inside, untouched on the node; dpkg and /usr/bin work; writes are the range', async () => {
    const nodeFiles = ['/etc/passwd', '/usr/bin/env', '/usr/bin', '/var/lib/dpkg/status'];
    const before = await Promise.all(nodeFiles.map(async (f) => ({ f, ...(await lstat(f)) })));
    const script = `${probe('/etc/passwd').replace('echo done;', 'echo pkgs=$(dpkg -l | grep -c ^ii); echo bins=$(ls /usr/bin | wc -l); id -u; echo done;')}`;
    await writeFile(path.join(dir, 'h.yaml'), shellManifest('h', { command: script, spec: '  securityContext: { hostUsers: false }\n' }));
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitLog('h', 'done');
    const out = await logs('h');
    const hostId = hostIdOf(out);
    assert.equal(hostId, 1_300_000_000, 'the range the node gave');
    assert.match(out, /owner=0:0/, "the node root's /etc/passwd is root's inside");
    assert.match(out, /wrote/);
    assert.ok(Number(/pkgs=(\d+)/.exec(out)?.[1]) > 10, `dpkg -l lists the node's packages:\n${out}`);
    assert.ok(Number(/bins=(\d+)/.exec(out)?.[1]) > 10, `ls /usr/bin works:\n${out}`);
    assert.equal((await stat(path.join(upper('h'), 'written'))).uid, hostId, "the container's file is its range's on the node");
    for (const b of before) {
      const a = await lstat(b.f);
      assert.deepEqual([a.uid, a.gid, a.ctimeMs], [b.uid, b.gid, b.ctimeMs], `${b.f} untouched on the node`);
    }
    // (Only the host view's layers' own tmpfs stays, host-layer.ts: not a layer of the node's.)
    assert.deepEqual(
      (await nodeMountsOf(root)).filter((l) => !/ - tmpfs acetate-host-layers /.test(l)),
      [],
      'the idmapped layer is detached from the node once runc created the container',
    );
  });

  it('imported template: mounted idmapped, not copied or chowned; stop leaves no mount', async () => {
    const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
    assert.equal((await cli(['template', 'import', 'bb', bb])).code, 0);
    const tdir = path.join(stateDir, 'templates', 'bb');
    const before = await owners(tdir);
    await writeFile(
      path.join(dir, 't.yaml'),
      shellManifest('t', { command: probe('/bin/busybox'), template: 'bb', spec: '  securityContext: { hostUsers: false }\n' }),
    );
    assert.equal((await apply()).code, 0);
    await waitLog('t', 'done');
    const out = await logs('t');
    assert.match(out, /owner=0:0/);
    assert.equal((await stat(path.join(upper('t'), 'written'))).uid, hostIdOf(out));
    assert.deepEqual(await owners(tdir), before, 'nothing in the template was added, chowned or touched');
    assert.deepEqual(await nodeMountsOf(root), []);
    await writeFile(
      path.join(dir, 't.yaml'),
      shellManifest('t', { command: probe('/bin/busybox'), template: 'bb', spec: '  state: Stopped\n  securityContext: { hostUsers: false }\n' }),
    );
    assert.equal((await apply()).code, 0);
    assert.deepEqual(await nodeMountsOf(root), [], 'stopped: nothing mounted');
    const runFiles = await readdir(path.join(runDir, 'containers', 'default_t'));
    assert.ok(runFiles.includes('bundle') && !runFiles.includes('lower'), `no layer mount point left in the run dir: ${runFiles.join(' ')}`);
  });

  it('image: two containers with different ranges share the one copy of the layers; whiteouts and opaque dirs hold', async () => {
    const script = `${probe('/app/hello.txt').replace('echo done;', 'echo opq=$(ls /opq | tr "\\n" ,); [ -e /etc/doomed ] || echo doomed-gone; echo done;')}`;
    const man = (name: string) =>
      shellManifest(name, { command: script, template: 'host', spec: `  image: ${image}\n  securityContext: { hostUsers: false }\n` });
    await writeFile(path.join(dir, 'a.yaml'), man('a').replace('  template: host\n', ''));
    assert.equal((await apply()).code, 0);
    await waitLog('a', 'done');
    const layers = path.join(stateDir, 'images', 'layers');
    const before = await owners(layers);
    const size = await bytes(layers);
    // The next container gets its own range of the pool: each container has one.
    await writeFile(path.join(dir, 'b.yaml'), man('b').replace('  template: host\n', ''));
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitLog('b', 'done');
    const [a, b] = [await logs('a'), await logs('b')];
    const [ida, idb] = [hostIdOf(a), hostIdOf(b)];
    assert.notEqual(ida, idb, 'two ranges');
    for (const [name, out, id] of [
      ['a', a, ida],
      ['b', b, idb],
    ] as const) {
      assert.match(out, /owner=0:0/, `${name}: the layer's root-owned file is root's inside`);
      assert.match(out, /opq=c,/, `${name}: the opaque dir hides the lower layer's files`);
      assert.match(out, /doomed-gone/, `${name}: the whiteout holds`);
      assert.equal((await stat(path.join(upper(name), 'written'))).uid, id, `${name}: its write is its range's on the node`);
      assert.ok((await bytes(path.join(stateDir, 'containers', `default_${name}`))) < 256 * 1024, `${name}: no copy of the layers in its dir`);
    }
    assert.equal((await lstat(path.join(layers, (await readdir(layers))[0]!))).uid, 0, 'the layers stay node root');
    assert.deepEqual(await owners(layers), before, 'the layer store is neither copied nor chowned by the second range');
    assert.equal(await bytes(layers), size, 'one copy of the image for both');
    assert.deepEqual(await nodeMountsOf(root), []);
  });
});

describe('acetate-idmap (the helper): mounts whole or none, never outliving its holder', function () {
  this.timeout(60_000);
  let root: string;
  const userns = userNamespaceFor(false, { hostID: 1_300_000_000, size: 65_536 })!;
  beforeEach(async () => {
    root = await mkdtemp('/tmp/acetate-idmap-helper-');
  });
  afterEach(async () => {
    await releaseIdmappedLayers(path.join(root, 'lower')).catch(() => undefined);
    assert.deepEqual(await nodeMountsOf(root), []);
    await rm(root, { recursive: true, force: true });
  });

  it('maps the layers read-only to the range and detaches them at release', async () => {
    const layer = path.join(root, 'layer');
    await mkdir(layer);
    await writeFile(path.join(layer, 'f'), 'x');
    const dir = path.join(root, 'lower');
    const [t0, t1] = await mountIdmappedLayers(dir, [layer, '/'], userns);
    assert.equal((await stat(path.join(t0!, 'f'))).uid, 1_300_000_000, "node root's file seen as the range's root");
    assert.equal((await stat(path.join(t1!, 'etc', 'passwd'))).uid, 1_300_000_000);
    await assert.rejects(writeFile(path.join(t0!, 'g'), 'y'), { code: 'EROFS' });
    assert.equal((await stat(path.join(layer, 'f'))).uid, 0, 'the layer itself is unchanged');
    await releaseIdmappedLayers(dir);
    assert.deepEqual(await nodeMountsOf(root), []);
    await assert.rejects(lstat(dir), { code: 'ENOENT' });
  });

  it('--ids-from: the layers before it are mapped whole, those from it only for the ids listed; one naming no layer is refused', async () => {
    const layer = path.join(root, 'layer');
    const node = path.join(root, 'node');
    for (const [d, f] of [
      [layer, 'f'],
      [node, 'g'],
    ] as const) {
      await mkdir(d);
      await writeFile(path.join(d, f), 'x');
      await chown(path.join(d, f), 105, 105); // a service's id: not among those listed
    }
    const dir = path.join(root, 'lower');
    const [t0, t1] = await mountIdmappedLayers(dir, [layer, node], userns, undefined, { uids: '0', gids: '0' }, 1);
    assert.equal((await stat(path.join(t0!, 'f'))).uid, 1_300_000_105, "acetate's own layer: every id mapped");
    assert.equal((await stat(path.join(t1!, 'g'))).uid, 65_534, "the node's: an id not listed is nobody's");
    assert.equal((await stat(t1!)).uid, 1_300_000_000, 'a listed id (root) is mapped');
    await releaseIdmappedLayers(dir);
    await assert.rejects(mountIdmappedLayers(dir, [layer, node], userns, undefined, { uids: '0', gids: '0' }, 2), /--ids-from takes a layer before the last/);
    assert.deepEqual(await nodeMountsOf(root), []);
  });

  it('a missing layer: nothing mounted, the error names it', async () => {
    const dir = path.join(root, 'lower');
    await assert.rejects(mountIdmappedLayers(dir, ['/', path.join(root, 'missing')], userns), (err: unknown) => {
      assert.ok(err instanceof IdmapError);
      assert.match(String((err.cause as Error).message), /open_tree .*missing: No such file/);
      assert.match(
        err.message,
        /idmapped to ids 1300000000\+65536: acetate-idmap: open_tree .*missing: No such file/,
        'the reason is in the message users see',
      );
      return true;
    });
    assert.deepEqual(await nodeMountsOf(root), []);
  });

  it('the holder gone (acetate died: its stdin closed), the mounts go; a SIGKILLed helper is released by the next scrub', async () => {
    const t = path.join(root, 'lower', '0');
    await mkdir(t, { recursive: true });
    const holder = spawn(IDMAP_HELPER, ['--hold', '1300000000', '65536', '/', t], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    assert.equal((await nodeMountsOf(root)).length, 1);
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    holder.stdin.destroy();
    assert.equal(await exited, 0);
    assert.deepEqual(await nodeMountsOf(root), [], 'detached by the helper itself');
    const killed = spawn(IDMAP_HELPER, ['--hold', '1300000000', '65536', '/', t], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((resolve) => killed.stdout.once('data', resolve));
    const gone = new Promise((resolve) => killed.once('exit', resolve));
    killed.kill('SIGKILL');
    await gone;
    assert.equal((await nodeMountsOf(root)).length, 1, 'a killed helper cannot detach');
    await releaseIdmappedLayers(path.join(root, 'lower'));
    assert.deepEqual(await nodeMountsOf(root), []);
  });
});
