/**
 * The image store against a real registry (docker-registry on 127.0.0.1): pulls by tag and by
 * digest, layers unpacked once with overlay whiteouts, archives imported offline, crafted layers
 * that try to escape, rm refused while in use, prune.
 */
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ImageStore } from '../../src/images/store.js';
import { exec } from '../../src/util/exec.js';
import { buildImage, pushLayout, tarOf, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';

describe('image store (real registry)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;
  let work: string;
  let store: ImageStore;
  let v1Digest: string;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-img-');
    const img = await buildImage(path.join(work, 'v1'), testImageLayers('v1'), TEST_IMAGE_CONFIG);
    v1Digest = await pushLayout(img.layout, `${reg.host}/test/app:v1`);
    store = new ImageStore({ stateDir: path.join(work, 'state'), registriesConf: reg.registriesConf });
  });

  after(async () => {
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
    await assert.rejects(stat(reg.dir), { code: 'ENOENT' }, 'registry dir removed');
  });

  it('pulls by tag: verified blobs, each layer unpacked into its own dir, OCI whiteouts as overlay whiteouts', async () => {
    const rec = await store.pull(`${reg.host}/test/app:v1`);
    assert.equal(rec.id, v1Digest);
    assert.deepEqual(rec.names, [`${reg.host}/test/app:v1`]);
    assert.equal(rec.layers.length, 3);
    assert.deepEqual(rec.config.Entrypoint, ['/bin/sh', '-c']);
    const layers = (await readdir(store.layersDir)).sort();
    assert.deepEqual(layers, rec.layers.map((l) => l.diffID.slice(7)).sort());
    const upper = path.join(store.layersDir, rec.layers[1]!.diffID.slice(7));
    const wh = await lstat(path.join(upper, 'etc', 'doomed'));
    assert.ok(wh.isCharacterDevice(), 'etc/.wh.doomed became a character device');
    assert.equal(wh.rdev, 0, 'whiteout is device 0:0');
    await assert.rejects(lstat(path.join(upper, 'etc', '.wh.doomed')), { code: 'ENOENT' });
    await assert.rejects(lstat(path.join(upper, 'opq', '.wh..wh..opq')), { code: 'ENOENT' });
    const { stdout } = await exec('getfattr', ['--absolute-names', '-n', 'trusted.overlay.opaque', '--only-values', path.join(upper, 'opq')]);
    assert.equal(stdout, 'y');
    // Nothing left of the pull itself.
    assert.deepEqual(await readdir(path.join(store.dir, 'tmp')), []);
    assert.equal(await store.lookup(`${reg.host}/test/app:v1`), v1Digest);
  });

  it('pulls by digest: the same image, no layer unpacked again', async () => {
    const dirs = (await store.get(v1Digest))!.layers.map((l) => path.join(store.layersDir, l.diffID.slice(7)));
    const inodes = async () => Promise.all(dirs.map((d) => stat(d).then((s) => s.ino)));
    const before = await inodes();
    const byDigest = await store.pull(`${reg.host}/test/app@${v1Digest}`);
    assert.equal(byDigest.id, v1Digest);
    assert.deepEqual(await inodes(), before, 'the same layer dirs (inodes)');
    assert.equal((await store.list()).length, 1);
  });

  it('picks linux/amd64 from a multi-arch index', async () => {
    const amd = await buildImage(path.join(work, 'multi'), testImageLayers('multi'), TEST_IMAGE_CONFIG);
    // A second manifest for arm64 in the same layout (its config says so), then an index of both.
    const blobs = path.join(amd.layout, 'blobs', 'sha256');
    const m = JSON.parse(await readFile(path.join(blobs, amd.manifestDigest.slice(7)), 'utf8')) as { config: { digest: string; size: number } };
    const cfg = JSON.parse(await readFile(path.join(blobs, m.config.digest.slice(7)), 'utf8')) as { architecture: string };
    const armCfg = JSON.stringify({ ...cfg, architecture: 'arm64' });
    const sha = (t: string) => `sha256:${createHash('sha256').update(t).digest('hex')}`;
    await writeFile(path.join(blobs, sha(armCfg).slice(7)), armCfg);
    const armManifest = JSON.stringify({ ...m, config: { ...m.config, digest: sha(armCfg), size: Buffer.byteLength(armCfg) } });
    await writeFile(path.join(blobs, sha(armManifest).slice(7)), armManifest);
    const mt = 'application/vnd.oci.image.manifest.v1+json';
    const amdSize = (await stat(path.join(blobs, amd.manifestDigest.slice(7)))).size;
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: mt, digest: sha(armManifest), size: Buffer.byteLength(armManifest), platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: mt, digest: amd.manifestDigest, size: amdSize, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    });
    await writeFile(path.join(blobs, sha(index).slice(7)), index);
    await writeFile(
      path.join(amd.layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha(index), size: Buffer.byteLength(index) }],
      }),
    );
    await exec('skopeo', [
      '--insecure-policy',
      'copy',
      '--quiet',
      '--all',
      '--dest-tls-verify=false',
      `oci:${amd.layout}`,
      `docker://${reg.host}/test/multi:1`,
    ]);
    const rec = await store.pull(`${reg.host}/test/multi:1`);
    assert.equal(rec.id, amd.manifestDigest, 'the amd64 manifest of the index');
    assert.equal(rec.layers.length, 3);
  });

  it("unknown tags and unknown registries fail with the registry's words, and leave nothing", async () => {
    await assert.rejects(store.pull(`${reg.host}/test/app:nope`), (err: Error) => err.name === 'ImagePullError' && /manifest unknown/i.test(err.message));
    await assert.rejects(store.pull(`${reg.host}/test/none:v1`), (err: Error) => err.name === 'ImagePullError' && /(name|manifest) unknown/i.test(err.message));
    assert.deepEqual(await readdir(path.join(store.dir, 'tmp')), []);
  });

  it('imports `docker save` and OCI archives offline', async () => {
    const img = await buildImage(path.join(work, 'arch'), testImageLayers('archived'), TEST_IMAGE_CONFIG);
    const dockerTar = path.join(work, 'saved.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${img.layout}`, `docker-archive:${dockerTar}:example.com/saved/app:1.0`]);
    const a = await store.importArchive(dockerTar);
    assert.deepEqual(a.names, ['example.com/saved/app:1.0']);
    assert.equal(await store.lookup('example.com/saved/app:1.0'), a.id);
    const ociTar = path.join(work, 'oci.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${img.layout}`, `oci-archive:${ociTar}`]);
    const b = await store.importArchive(ociTar, 'example.com/oci/app:2.0');
    assert.equal(await store.lookup('example.com/oci/app:2.0'), b.id);
    assert.equal(b.id, img.manifestDigest, 'an OCI archive keeps its manifest digest');
    // The two share their base layer with the pulled image: still one dir per distinct layer.
    const diffIDs = new Set([...(await store.list()).flatMap((r) => r.layers.map((l) => l.diffID.slice(7)))]);
    assert.deepEqual((await readdir(store.layersDir)).sort(), [...diffIDs].sort());
    await assert.rejects(store.importArchive(path.join(work, 'v1', 'index.json')), /not a tar archive|neither/);
  });

  it('a crafted layer with ../, absolute paths and symlink escapes writes nothing outside its layer dir', async () => {
    const outside = path.join(work, 'outside');
    await mkdir(outside);
    const stage = path.join(work, 'evil-stage');
    await mkdir(path.join(stage, 'via-link'), { recursive: true });
    await writeFile(path.join(stage, 'dotdot'), 'escaped by ..\n');
    await writeFile(path.join(stage, 'abs'), 'escaped by an absolute path\n');
    await symlink(outside, path.join(stage, 'link'));
    await writeFile(path.join(stage, 'via-link', 'pwned'), 'written through a symlink\n');
    await symlink('../../../../../../../../..' + outside, path.join(stage, 'rel-link'));
    await mkdir(path.join(stage, 'via-rel'));
    await writeFile(path.join(stage, 'via-rel', 'pwned2'), 'written through a relative symlink\n');
    const evilTar = path.join(work, 'evil.tar');
    // GNU tar itself crafts the names: -P keeps them as given, --transform rewrites them.
    await exec('tar', [
      '-c',
      '-P',
      '-f',
      evilTar,
      '-C',
      stage,
      '--transform',
      `s,^dotdot$,../../../../../../..${outside}/dotdot,;s,^abs$,${outside}/abs,;s,^via-link,link,;s,^via-rel,rel-link,`,
      'dotdot',
      'abs',
      'link',
      'via-link/pwned',
      'rel-link',
      'via-rel/pwned2',
    ]);
    const listing = (await exec('tar', ['-tvf', evilTar])).stdout;
    assert.match(listing, /\.\.\/\.\.\/.*dotdot/);
    assert.match(listing, /link\/pwned/);
    const layers = testImageLayers('evil');
    const img = await buildImage(path.join(work, 'evil'), [layers[0]!, { build: async () => undefined, tar: await readFile(evilTar) }], TEST_IMAGE_CONFIG);
    await pushLayout(img.layout, `${reg.host}/test/evil:1`);
    // GNU tar refuses the `..` member and will not write through the link: the layer is refused whole.
    await assert.rejects(
      store.pull(`${reg.host}/test/evil:1`),
      (err: Error) => err.name === 'ImagePullError' && /Member name contains '\.\.'|Cannot open/.test(err.message),
    );
    assert.deepEqual(await readdir(outside), [], 'nothing written outside the store');
    await assert.rejects(lstat(path.join(store.layersDir, img.diffIDs[1]!.slice(7))), { code: 'ENOENT' }, 'no layer dir for the refused layer');
    assert.deepEqual(
      (await readdir(store.layersDir)).filter((n) => n.startsWith('.')),
      [],
      'no half-unpacked dir left',
    );
    assert.equal(await store.lookup(`${reg.host}/test/evil:1`), undefined);
  });

  it('keeps setuid/setgid bits and creates device nodes from a layer, as runc/containerd do as root', async () => {
    const stage = path.join(work, 'special-stage');
    await mkdir(path.join(stage, 'bin'), { recursive: true });
    await mkdir(path.join(stage, 'dev'));
    await writeFile(path.join(stage, 'bin', 'suid'), '#!/bin/sh\necho suid\n');
    await chmod(path.join(stage, 'bin', 'suid'), 0o4755);
    await writeFile(path.join(stage, 'bin', 'sgid'), '#!/bin/sh\necho sgid\n');
    await chmod(path.join(stage, 'bin', 'sgid'), 0o2755);
    await exec('mknod', ['-m', '666', path.join(stage, 'dev', 'mynull'), 'c', '1', '3']); // /dev/null's major:minor
    const layers = testImageLayers('special');
    const img = await buildImage(path.join(work, 'special'), [layers[0]!, { build: async () => undefined, tar: await tarOf(stage) }], TEST_IMAGE_CONFIG);
    assert.match(
      (await exec('tar', ['-tvf', '-'], { input: gunzipSync(await readFile(path.join(img.layout, 'blobs', 'sha256', img.layerDigests[1]!.slice(7)))) })).stdout,
      /crw-rw-rw- 0\/0 +1,3 .*dev\/mynull/,
    );
    await pushLayout(img.layout, `${reg.host}/test/special:1`);
    const rec = await store.pull(`${reg.host}/test/special:1`);
    const dir = path.join(store.layersDir, rec.layers[1]!.diffID.slice(7));
    const suid = await lstat(path.join(dir, 'bin', 'suid'));
    assert.equal(suid.mode & 0o7777, 0o4755, 'setuid bit kept');
    assert.equal(suid.uid, 0, 'owned by root');
    assert.equal((await lstat(path.join(dir, 'bin', 'sgid'))).mode & 0o7777, 0o2755, 'setgid bit kept');
    const dev = await lstat(path.join(dir, 'dev', 'mynull'));
    assert.ok(dev.isCharacterDevice(), 'the device node is created');
    assert.equal(dev.rdev, (1 << 8) | 3, 'with its major:minor 1:3');
    assert.equal(dev.mode & 0o777, 0o666);
    await store.remove(`${reg.host}/test/special:1`, { inUseBy: () => [] });
    await store.prune();
    await assert.rejects(lstat(dir), { code: 'ENOENT' }, 'pruned with its image');
  });

  it('rm is refused while a container uses the image; prune removes what no image uses', async () => {
    await assert.rejects(store.remove(`${reg.host}/test/app:v1`, { inUseBy: () => ['default/web'] }), /in use by default\/web/);
    assert.ok(await store.get(v1Digest));
    const before = (await readdir(store.layersDir)).length;
    const nothing = await store.prune();
    assert.equal(nothing.layers, 0, 'every layer is used by an image');
    await store.remove(`${reg.host}/test/app:v1`, { inUseBy: () => [] });
    assert.equal(await store.get(v1Digest), undefined);
    assert.equal(await store.lookup(`${reg.host}/test/app@${v1Digest}`), undefined);
    const pruned = await store.prune();
    assert.ok(pruned.layers >= 1 && pruned.blobs >= 1, JSON.stringify(pruned));
    assert.ok((await readdir(store.layersDir)).length < before);
    const used = new Set((await store.list()).flatMap((r) => r.layers.map((l) => l.diffID.slice(7))));
    for (const d of await readdir(store.layersDir)) assert.ok(used.has(d), `${d} is used`);
  });
});
