/**
 * Trust in what images are (real registry on 127.0.0.1, a proxy that lies, real skopeo):
 * a pinned digest means that content whatever the registry answers, a name given to imported
 * content names only that content, and an image's User is looked up inside the image.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageResolver } from '../../src/images/resolver.js';
import { ImageStore } from '../../src/images/store.js';
import { imageProcess } from '../../src/images/oci-process.js';
import { exec } from '../../src/util/exec.js';
import { startFaultyProxy, type FaultyProxy } from '../support/faulty-proxy.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers, type BuiltImage } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, writeRegistriesConf, type TestRegistry } from '../support/registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const processSpec = { command: [], args: [], env: [], workingDir: '' } as never;

describe('image trust: digests, names, paths inside the image (real registry)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;
  let proxy: FaultyProxy;
  let work: string;
  let store: ImageStore;
  let a: BuiltImage;
  let b: BuiltImage;

  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultyProxy(reg.port);
    work = await mkdtemp('/tmp/acetate-trust-');
    a = await buildImage(path.join(work, 'a'), testImageLayers('a'), TEST_IMAGE_CONFIG);
    b = await buildImage(path.join(work, 'b'), testImageLayers('b', [{ build: (d) => writeFile(path.join(d, 'evil'), 'evil\n') }]), TEST_IMAGE_CONFIG);
    assert.equal(await pushLayout(a.layout, `${reg.host}/t/base:1`), a.manifestDigest);
    assert.equal(await pushLayout(b.layout, `${reg.host}/t/evil:1`), b.manifestDigest);
    const conf = await writeRegistriesConf(path.join(work, 'registries.conf'), [reg.host, proxy.host]);
    store = new ImageStore({ stateDir: path.join(work, 'state'), registriesConf: conf });
    // The proxy answers the request for a's digest with b's manifest (and claims a's digest in its header).
    proxy.swaps.set(a.manifestDigest, { body: await readFile(path.join(b.layout, 'blobs', 'sha256', b.manifestDigest.slice(7))), mediaType: OCI_MANIFEST });
  });

  after(async () => {
    await proxy.close();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  async function storedBlob(digest: string): Promise<boolean> {
    return stat(store.blobPath(digest)).then(
      () => true,
      () => false,
    );
  }

  async function nothingOfB(): Promise<void> {
    assert.equal(await storedBlob(b.manifestDigest), false, "b's manifest is not stored");
    assert.equal(await storedBlob(b.layerDigests.at(-1)!), false, "b's own layer is not stored");
    assert.equal(await storedBlob(b.layerDigests.at(-2)!), false, "b's evil layer is not stored");
    assert.equal(
      (await store.list()).some((r) => r.id === b.manifestDigest),
      false,
    );
  }

  it('a pinned digest answered with other content is refused when resolving, naming both digests', async () => {
    const ref = `${proxy.host}/t/base@${a.manifestDigest}`;
    const want = new RegExp(`answered for ${a.manifestDigest} with a manifest whose digest is ${b.manifestDigest}`);
    await assert.rejects(new ImageResolver(store, { cacheMs: 0 }).resolve(ref, 'Always'), want);
    await assert.rejects(store.pull(ref), want);
    await nothingOfB();
  });

  it('a pull of the pinned digest through the lying proxy is refused too, and stores nothing of the other image', async () => {
    await assert.rejects(store.ensure(`${proxy.host}/t/base`, a.manifestDigest), /does not match|digest/i);
    await nothingOfB();
    assert.equal(await store.get(a.manifestDigest), undefined, 'nothing stored under the pinned digest');
  });

  it('name:tag@digest is the digest (the tag is neither asked for nor recorded)', async () => {
    const ref = `${reg.host}/t/base:no-such-tag@${a.manifestDigest}`;
    assert.equal(await new ImageResolver(store, { cacheMs: 0 }).resolve(ref, 'Always'), a.manifestDigest);
    const rec = await store.pull(ref);
    assert.equal(rec.id, a.manifestDigest);
    assert.equal(await store.lookup(`${reg.host}/t/base:no-such-tag`), undefined, 'the tag beside the digest names nothing on the node');
    assert.equal(await store.lookup(`${reg.host}/t/base@${a.manifestDigest}`), a.manifestDigest);
  });

  it('image import refuses a digest name for other content, and an archive naming itself by digest', async () => {
    const evilTar = path.join(work, 'evil-oci.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${b.layout}`, `oci-archive:${evilTar}`]);
    const name = `${reg.host}/t/base@${a.manifestDigest}`;
    await assert.rejects(store.importArchive(evilTar, name), new RegExp(`names digest ${a.manifestDigest}, but the archive's manifest is ${b.manifestDigest}`));
    assert.notEqual(await store.lookup(name), b.manifestDigest);
    // Its own digest is a true name.
    const own = await store.importArchive(evilTar, `${reg.host}/t/evil@${b.manifestDigest}`);
    assert.equal(own.id, b.manifestDigest);
    assert.equal(await store.lookup(`${reg.host}/t/evil@${b.manifestDigest}`), b.manifestDigest);

    // A `docker save` archive whose RepoTags carry a digest name.
    const saved = path.join(work, 'saved.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${a.layout}`, `docker-archive:${saved}:example.com/x/y:1`]);
    const unpacked = path.join(work, 'saved');
    await mkdir(unpacked);
    await exec('tar', ['-xf', saved, '-C', unpacked]);
    const mf = JSON.parse(await readFile(path.join(unpacked, 'manifest.json'), 'utf8')) as { RepoTags: string[] }[];
    mf[0]!.RepoTags = [`docker.io/library/debian@${a.manifestDigest}`];
    await writeFile(path.join(unpacked, 'manifest.json'), JSON.stringify(mf));
    const crafted = path.join(work, 'crafted.tar');
    await exec('tar', ['-cf', crafted, '-C', unpacked, '.']);
    await assert.rejects(store.importArchive(crafted), /names itself "docker\.io\/library\/debian@sha256:[a-f0-9]{64}", a digest name; only tags/);
    assert.equal(await store.lookup(`docker.io/library/debian@${a.manifestDigest}`), undefined);
  });

  it("an image whose /etc links to the node's /etc cannot pick node ids for its User", async () => {
    const img = await buildImage(path.join(work, 'etclink'), [{ build: (d) => symlink('/etc', path.join(d, 'etc')) }], {
      Entrypoint: ['/bin/true'],
      User: 'www-data',
    });
    await pushLayout(img.layout, `${reg.host}/t/etclink:1`);
    await store.pull(`${reg.host}/t/etclink:1`);
    const root = await store.rootfs(img.manifestDigest);
    assert.equal(root.passwd, undefined, 'no passwd read through the link');
    assert.throws(() => imageProcess(processSpec, root), /the image's User 'www-data': no user 'www-data' in the image's \/etc\/passwd/);
  });

  it("a User found through a link inside the image resolves to the image's ids", async () => {
    const img = await buildImage(
      path.join(work, 'rel'),
      [
        {
          async build(d) {
            await mkdir(path.join(d, 'usr', 'etc'), { recursive: true });
            await writeFile(path.join(d, 'usr', 'etc', 'passwd'), 'app:x:1234:4321::/:/bin/sh\n');
            await symlink('usr/etc', path.join(d, 'etc'));
          },
        },
      ],
      { Entrypoint: ['/bin/true'], User: 'app' },
    );
    await pushLayout(img.layout, `${reg.host}/t/rel:1`);
    await store.pull(`${reg.host}/t/rel:1`);
    const p = imageProcess(processSpec, await store.rootfs(img.manifestDigest));
    assert.deepEqual(p.user, { uid: 1234, gid: 4321 });
  });

  it('an image with more layers than an overlay mount takes is refused from its manifest, before any blob is fetched', async () => {
    const many = Array.from({ length: 45 }, (_, i) => ({ build: (d: string) => writeFile(path.join(d, `f${i}`), `${i}\n`) }));
    const img = await buildImage(path.join(work, 'many'), many, { Entrypoint: ['/bin/true'] });
    await pushLayout(img.layout, `${reg.host}/t/many:1`);
    proxy.seen.length = 0;
    await assert.rejects(store.pull(`${proxy.host}/t/many:1`), /the image has 45 layers; at most \d+ fit in an overlay mount .* \(nothing downloaded\)/);
    assert.deepEqual(
      proxy.seen.filter((r) => r.startsWith('GET') && r.includes('/blobs/')),
      [],
      'no blob was downloaded',
    );
    for (const l of img.layerDigests) assert.equal(await storedBlob(l), false);
  });

  it('two stores (two processes) pulling one image at once download each blob once', async () => {
    const img = await buildImage(path.join(work, 'shared'), testImageLayers('shared'), TEST_IMAGE_CONFIG);
    await pushLayout(img.layout, `${reg.host}/t/shared:1`);
    const conf = await writeRegistriesConf(path.join(work, 'registries2.conf'), [reg.host, proxy.host]);
    const stateDir = path.join(work, 'shared-state');
    const one = new ImageStore({ stateDir, registriesConf: conf });
    const two = new ImageStore({ stateDir, registriesConf: conf });
    proxy.seen.length = 0;
    const [x, y] = await Promise.all([one.ensure(`${proxy.host}/t/shared`, img.manifestDigest), two.ensure(`${proxy.host}/t/shared`, img.manifestDigest)]);
    assert.equal(x.id, img.manifestDigest);
    assert.equal(y.id, img.manifestDigest);
    const blobGets = proxy.seen.filter((r) => r.startsWith('GET') && r.includes('/blobs/'));
    for (const l of img.layerDigests) assert.equal(blobGets.filter((r) => r.endsWith(l)).length, 1, `layer ${l} fetched once`);
  });
});
