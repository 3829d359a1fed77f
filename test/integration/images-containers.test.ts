/**
 * Containers made from images pulled from a real registry, through the real CLI: one copy of each
 * layer for 20 containers, whiteouts and opaque dirs seen from inside, Kubernetes' rules for
 * Entrypoint/Cmd/Env/WorkingDir, digests recorded, and a tag that moves upstream.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { runCli } from '../support/cli.js';
import { flatContainers } from '../support/get.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { imageManifest } from '../support/manifest.js';

describe('containers from images (real registry, real runc)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let work: string;
  let st: TmpState;
  let stateDir: string;
  let dir: string;
  let v1: string;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, { stateDir, env });

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-imgc-');
    const img = await buildImage(path.join(work, 'v1'), testImageLayers('v1'), TEST_IMAGE_CONFIG);
    v1 = await pushLayout(img.layout, `${reg.host}/test/app:v1`);
    await pushLayout(img.layout, `${reg.host}/test/app:moving`);
    st = await tmpState('acetate-imgc-state-');
    stateDir = st.dir;
    dir = path.join(work, 'manifests');
    await mkdir(dir);
    env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
  });

  after(async () => {
    await st.cleanupAndAssertNoLeaks();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  async function pidOf(name: string): Promise<number> {
    const c = await makeRuntime(stateDir).get(`default/${name}`);
    assert.equal(c?.process.state, 'running', `${name} runs`);
    return c!.process.pid!;
  }

  async function inside(name: string, file: string): Promise<string> {
    const pid = await pidOf(name);
    return waitFor(`${file} in ${name}`, () => readFile(`/proc/${pid}/root${file}`, 'utf8').catch(() => undefined));
  }

  it('20 containers of one image: each layer once on disk, whiteouts honoured, image config as Kubernetes uses it', async () => {
    const image = `${reg.host}/test/app:v1`;
    for (let i = 0; i < 20; i++) {
      let extra = '';
      if (i === 1) extra = '  env: [{ name: GREETING, value: from-manifest }]\n';
      if (i === 2) extra = '  args: ["echo args-replace-cmd > /tmp/out; exec sleep 1000"]\n';
      if (i === 3) extra = '  command: ["/bin/sh", "-c", "echo command-$FROM_IMAGE-$GREETING > /tmp/out; exec sleep 1000"]\n';
      if (i === 4) extra = '  workingDir: /tmp\n';
      // c5 names the image by digest: the same image, the same layers.
      await writeFile(path.join(dir, `c${i}.yaml`), imageManifest(`c${i}`, i === 5 ? `${reg.host}/test/app@${v1}` : image, extra));
    }
    const applied = await cli('apply', '-f', dir);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal(await inside('c0', '/tmp/out'), 'image-default from /app\n', 'Entrypoint + Cmd, image Env, image WorkingDir');
    assert.equal(await inside('c1', '/tmp/out'), 'from-manifest from /app\n', "the manifest's env overrides the image's");
    assert.equal(await inside('c2', '/tmp/out'), 'args-replace-cmd\n', 'args replace Cmd, Entrypoint stays');
    assert.equal(await inside('c3', '/tmp/out'), 'command-yes-image-default\n', 'command replaces Entrypoint and Cmd; image Env kept');
    assert.equal(await inside('c4', '/tmp/out'), 'image-default from /tmp\n', "the manifest's workingDir");
    assert.equal(await inside('c5', '/tmp/out'), 'image-default from /app\n', 'pulled by digest');
    const pid = await pidOf('c0');
    await assert.rejects(readFile(`/proc/${pid}/root/etc/doomed`), { code: 'ENOENT' }, 'the file deleted by a later layer is absent');
    assert.deepEqual((await readdir(`/proc/${pid}/root/opq`)).sort(), ['c'], 'the opaque dir hides the lower layer');
    assert.equal(await readFile(`/proc/${pid}/root/version`, 'utf8'), 'v1\n');
    assert.equal(await readFile(`/proc/${pid}/root/app/hello.txt`, 'utf8'), 'hello from the image\n');
    // One copy of each layer, shared by all 20 containers: their root overlays name the same lower dirs.
    const layers = await readdir(path.join(stateDir, 'images', 'layers'));
    assert.equal(layers.length, 3);
    const lowers = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const mi = await readFile(`/proc/${await pidOf(`c${i}`)}/mountinfo`, 'utf8');
      const root = mi.split('\n').find((l) => l.split(' ')[4] === '/' && l.includes(' - overlay '))!;
      lowers.add(/lowerdir=([^,]+)/.exec(root)![1]!);
    }
    assert.equal(lowers.size, 1, 'every container has the same lower layers');
    assert.equal([...lowers][0]!.split(':').length, 3);
    const du = Number((await exec('du', ['-s', '-k', path.join(stateDir, 'containers')])).stdout.split('\t')[0]);
    assert.ok(du < 20 * 64, `20 private areas take ${du} KiB (no copy of the image)`);
    // The digest is recorded and shown.
    const got = flatContainers((await cli('get', '-o', 'json')).stdout);
    assert.equal(got.find((i) => i.name === 'c0')!.object.status?.imageID, `${reg.host}/test/app@${v1}`);
    const wide = await cli('get', '-o', 'wide');
    assert.match(wide.stdout, new RegExp(`test/app:v1@${v1.slice(0, 19)}`));
    const desc = await cli('describe', 'c0');
    assert.match(desc.stdout, new RegExp(`Image ID:\\s+${reg.host}/test/app@${v1}`));
    const again = await cli('plan', '-f', dir);
    assert.equal(again.code, 0, again.stdout);
    // In use: rm refused.
    const rmImg = await cli('image', 'rm', image);
    assert.equal(rmImg.code, 1);
    assert.match(rmImg.stderr, /in use by default\/c0/);
    for (let i = 0; i < 20; i++) await rm(path.join(dir, `c${i}.yaml`));
    const down = await cli('apply', '-f', dir, '--allow-empty');
    assert.equal(down.code, 0, down.stderr);
  });

  it("runs as the image's User, a name looked up in the image's own /etc/passwd", async () => {
    const layers = testImageLayers('user', [
      {
        build: async (d) => {
          await mkdir(path.join(d, 'etc'));
          await writeFile(path.join(d, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/sh\n');
        },
      },
    ]);
    const img = await buildImage(path.join(work, 'user'), layers, {
      ...TEST_IMAGE_CONFIG,
      User: 'www',
      Cmd: ['echo "$(id -u):$(id -g)" > /tmp/out; exec sleep 1000'],
    });
    await pushLayout(img.layout, `${reg.host}/test/user:1`);
    await writeFile(path.join(dir, 'user.yaml'), imageManifest('user', `${reg.host}/test/user:1`));
    const applied = await cli('apply', '-f', dir);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal(await inside('user', '/tmp/out'), '33:34\n');
    await rm(path.join(dir, 'user.yaml'));
    assert.equal((await cli('apply', '-f', dir, '--allow-empty')).code, 0);
    assert.equal((await cli('image', 'prune', '--all')).code, 0, 'no container uses any image now');
  });

  it('a tag pushed again: nothing under IfNotPresent; under Always a replace with both digests that keeps the private area', async () => {
    const image = `${reg.host}/test/app:moving`;
    await writeFile(path.join(dir, 'keep.yaml'), imageManifest('keep', image, '  imagePullPolicy: IfNotPresent\n'));
    await writeFile(path.join(dir, 'follow.yaml'), imageManifest('follow', image, '  imagePullPolicy: Always\n'));
    const applied = await cli('apply', '-f', dir);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const keepPid = await pidOf('keep');
    const followPid = await pidOf('follow');
    await writeFile(`/proc/${followPid}/root/root/marker`, 'private\n');
    assert.equal((await cli('plan', '-f', dir)).code, 0, 'converged before the push');
    const v2img = await buildImage(path.join(work, 'v2'), testImageLayers('v2'), TEST_IMAGE_CONFIG);
    const v2 = await pushLayout(v2img.layout, image);
    assert.notEqual(v2, v1);
    const planned = await cli('plan', '-f', dir);
    assert.equal(planned.code, 2, planned.stdout + planned.stderr);
    assert.match(planned.stdout, new RegExp(`-/\\+ replace\\s+default/follow\\s+image ${image}: image digest ${v1} → ${v2}`));
    assert.match(planned.stdout, /private area is kept/);
    assert.doesNotMatch(planned.stdout, /default\/keep/);
    const applied2 = await cli('apply', '-f', dir);
    assert.equal(applied2.code, 0, applied2.stdout + applied2.stderr);
    assert.equal(await pidOf('keep'), keepPid, 'IfNotPresent: untouched');
    assert.equal(await inside('keep', '/version'), 'v1\n');
    assert.notEqual(await pidOf('follow'), followPid);
    assert.equal(await inside('follow', '/version'), 'v2\n');
    assert.equal(await inside('follow', '/root/marker'), 'private\n', 'private area kept over the new digest');
    // The base layer is shared by v1 and v2: 3 + 1 layer dirs in all.
    assert.equal((await readdir(path.join(stateDir, 'images', 'layers'))).length, 4);
    const again = await cli('plan', '-f', dir);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    await rm(path.join(dir, 'keep.yaml'));
    await rm(path.join(dir, 'follow.yaml'));
    assert.equal((await cli('apply', '-f', dir, '--allow-empty')).code, 0);
    const pruned = await cli('image', 'prune', '--all');
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(await readdir(path.join(stateDir, 'images', 'layers')), []);
  });
});
