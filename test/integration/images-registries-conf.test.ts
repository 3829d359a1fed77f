/**
 * registries.conf honoured (two real registries on 127.0.0.1): a mirror serves an image its origin
 * (a stopped registry) cannot, with pull-from-mirror semantics, and a short-name alias points a
 * short name at a test registry; a container of that short name runs and the plan and status show
 * the fully qualified name. The config is a test file ($ACETATE_REGISTRIES_CONF): the node's
 * /etc/containers is never written.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageStore } from '../../src/images/store.js';
import { runCli } from '../support/cli.js';
import { flatContainers } from '../support/get.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { buildImage, imageManifest, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { registryProcessesOf, startRegistry, type TestRegistry } from '../support/registry.js';
import { makeRuntime, makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

describe('registries.conf: mirrors and short-name aliases (two real registries)', function () {
  this.timeout(180_000);
  let mirror: TestRegistry;
  let origin: string;
  let work: string;
  let digest: string;

  const conf = (pullFromMirror?: string, aliases = '') => `[[registry]]
location = "${origin}"
insecure = true
[[registry.mirror]]
location = "${mirror.host}"
insecure = true
${pullFromMirror ? `pull-from-mirror = "${pullFromMirror}"\n` : ''}
${aliases}`;

  before(async () => {
    mirror = await startRegistry();
    // The origin: a real registry, stopped, so its port answers nothing.
    const o = await startRegistry();
    origin = o.host;
    await o.stop();
    work = await mkdtemp('/tmp/acetate-imgm-');
    const img = await buildImage(path.join(work, 'img'), testImageLayers('mirrored'), TEST_IMAGE_CONFIG);
    digest = await pushLayout(img.layout, `${mirror.host}/team/app:v1`); // pushed to the mirror only
  });

  after(async () => {
    await mirror.stop();
    assert.deepEqual(await registryProcessesOf(mirror.dir), [], 'registry process stopped');
    await rm(work, { recursive: true, force: true });
  });

  it('pulls an origin image through its mirror (tag and digest); digest-only mirrors refuse tags', async () => {
    const file = path.join(work, 'mirror.conf');
    await writeFile(file, conf());
    const store = new ImageStore({ stateDir: path.join(work, 'state-m'), registriesConf: file });
    const rec = await store.pull(`${origin}/team/app:v1`);
    assert.equal(rec.id, digest, 'the digest pushed to the mirror (verified blob by blob)');
    assert.deepEqual(rec.names, [`${origin}/team/app:v1`], 'named by its origin');
    assert.equal((await readdir(store.layersDir)).length, 3);
    assert.equal(await readFile(path.join(store.layersDir, rec.layers[2]!.diffID.slice(7), 'version'), 'utf8'), 'mirrored\n');

    // pull-from-mirror = "digest-only": a tag must come from the origin (down), a digest may come from the mirror.
    const strict = path.join(work, 'digest-only.conf');
    await writeFile(strict, conf('digest-only'));
    const s2 = new ImageStore({ stateDir: path.join(work, 'state-d'), registriesConf: strict });
    await assert.rejects(s2.pull(`${origin}/team/app:v1`), (err: Error) => err.name === 'ImagePullError' && /connection refused/.test(err.message));
    assert.equal((await s2.pull(`${origin}/team/app@${digest}`)).id, digest);
    // And the origin alone (no mirror) really is unreachable.
    const none = path.join(work, 'none.conf');
    await writeFile(none, `[[registry]]\nlocation = "${origin}"\ninsecure = true\n`);
    await assert.rejects(
      new ImageStore({ stateDir: path.join(work, 'state-n'), registriesConf: none }).pull(`${origin}/team/app@${digest}`),
      /connection refused/,
    );
  });

  it('a short-name alias points a short name at the registry; the container runs; plan and status show the full name', async () => {
    const file = path.join(work, 'alias.conf');
    await writeFile(file, `[[registry]]\nlocation = "${mirror.host}"\ninsecure = true\n\n[aliases]\n"myapp" = "${mirror.host}/team/app"\n`);
    const stateDir = await makeTmpStateDir('acetate-imga-state-');
    const env = { ACETATE_REGISTRIES_CONF: file };
    const cli = (...args: string[]) => runCli(args, { stateDir, env });
    try {
      const dir = path.join(work, 'manifests');
      await mkdir(dir);
      await writeFile(path.join(dir, 'short.yaml'), imageManifest('short', 'myapp:v1'));
      const full = `${mirror.host}/team/app:v1`;
      const planned = await cli('plan', '-f', dir);
      assert.equal(planned.code, 2, planned.stdout + planned.stderr);
      assert.match(planned.stdout, new RegExp(`default/short.*${full.replace(/\./g, '\\.')}`));
      assert.doesNotMatch(planned.stdout, /docker\.io/);
      const applied = await cli('apply', '-f', dir);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      const c = await makeRuntime(stateDir).get('default/short');
      assert.equal(c?.process.state, 'running');
      const out = await waitFor('/tmp/out', () => readFile(`/proc/${c!.process.pid!}/root/tmp/out`, 'utf8').catch(() => undefined));
      assert.equal(out, 'image-default from /app\n');
      const got = flatContainers((await cli('get', '-o', 'json')).stdout).find((i) => i.name === 'short')!;
      assert.equal(got.object.status?.image, full);
      assert.equal(got.object.status?.imageID, `${mirror.host}/team/app@${digest}`);
      assert.equal((await cli('plan', '-f', dir)).code, 0, 'converged');
    } finally {
      await cleanupStateDir(stateDir, { runtime: makeRuntime(stateDir) });
      await assertNoLeaks(stateDir, { dirRemoved: true });
    }
  });
});
