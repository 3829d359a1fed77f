/**
 * Device nodes and setuid bits from an image layer, in a running container (real registry, real
 * runc): the store creates them as containerd does as root (images-store tests the layer dir);
 * here the container's device cgroup decides what opening them does: a copy of /dev/null (1:3, one
 * of runc's default devices) works, a copy of /dev/mem (1:1) is refused. The setuid file keeps its
 * bit inside the container, and the process runs with no_new_privs (NoNewPrivs: 1).
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { runCli } from '../support/cli.js';
import { buildImage, pushLayout, tarOf, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

describe('device nodes and setuid files from an image, in a container (real registry, real runc)', function () {
  this.timeout(180_000);
  let reg: TestRegistry;
  let work: string;
  let st: TmpState;
  let stateDir: string;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-imgs-');
    st = await tmpState('acetate-imgs-state-');
    stateDir = st.dir;
  });

  after(async () => {
    await st.cleanupAndAssertNoLeaks();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  it("a layer's device nodes exist but only runc's default devices open; setuid bits stay, under no_new_privs", async () => {
    const stage = path.join(work, 'stage');
    await mkdir(path.join(stage, 'devs'), { recursive: true });
    await exec('mknod', ['-m', '666', path.join(stage, 'devs', 'nul'), 'c', '1', '3']);
    await exec('mknod', ['-m', '666', path.join(stage, 'devs', 'mem'), 'c', '1', '1']);
    await writeFile(path.join(stage, 'suid'), 'x\n');
    await chmod(path.join(stage, 'suid'), 0o4755);
    const layers = testImageLayers('special');
    const img = await buildImage(path.join(work, 'img'), [layers[0]!, { build: async () => undefined, tar: await tarOf(stage) }], TEST_IMAGE_CONFIG);
    await pushLayout(img.layout, `${reg.host}/test/special:1`);
    const dir = path.join(work, 'manifests');
    await mkdir(dir);
    const script =
      'head -c1 /devs/mem >/dev/null 2>/tmp/mem.err; m=$?; echo hi > /devs/nul; n=$?; ' +
      'echo "mem=$m nul=$n $(stat -c %a:%u /suid) $(grep NoNewPrivs /proc/self/status | tr -d "\\t ")" > /tmp/out; exec sleep 1000';
    await writeFile(
      path.join(dir, 's.yaml'),
      `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: special
spec:
  image: ${reg.host}/test/special:1
  terminationGracePeriodSeconds: 1
  args: [${JSON.stringify(script)}]
`,
    );
    const applied = await runCli(['apply', '-f', dir], { stateDir, env: { ACETATE_REGISTRIES_CONF: reg.registriesConf } });
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const c = await makeRuntime(stateDir).get('default/special');
    assert.equal(c?.process.state, 'running');
    const root = `/proc/${c!.process.pid!}/root`;
    const out = await waitFor('/tmp/out', () => readFile(`${root}/tmp/out`, 'utf8').catch(() => undefined));
    assert.equal(out, 'mem=1 nul=0 4755:0 NoNewPrivs:1\n', 'the device cgroup refuses 1:1 and allows 1:3; setuid kept; no_new_privs');
    assert.match(await readFile(`${root}/tmp/mem.err`, 'utf8'), /Operation not permitted/);
  });
});
