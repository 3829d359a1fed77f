/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server */
/**
 * Kubernetes mode with images: a Container object naming an image (same CRD fields as files) runs
 * from a real registry, and its status carries image and imageID; an object naming an unknown tag
 * waits with Ready=False ErrImagePull/ImagePullBackOff and the registry's words.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Controller } from '../../src/controller/loop.js';
import { ImageStore } from '../../src/images/store.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { containerObj, startFake, startKubeController } from './helpers.js';

const WAIT = { timeoutMs: 30_000, intervalMs: 100 };

describe('kube: containers from images (real registry, real runc)', function () {
  this.timeout(120_000);
  let fake: FakeApiServer;
  let reg: TestRegistry;
  let work: string;
  let stateDir: string;
  let runtime: RuncRuntime;
  let controller: Controller;
  let digest: string;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-kimg-');
    const img = await buildImage(path.join(work, 'img'), testImageLayers('k1'), TEST_IMAGE_CONFIG);
    digest = await pushLayout(img.layout, `${reg.host}/test/app:k1`);
    ({ fake } = await startFake());
    stateDir = await makeTmpStateDir('acetate-kimg-state-');
    runtime = new RuncRuntime({
      stateDir,
      templates: new TemplateStore({ stateDir }),
      images: new ImageStore({ stateDir, registriesConf: reg.registriesConf }),
    });
    ({ controller } = await startKubeController({ runtime, kubeConfig: fake.kubeConfig() }));
  });

  after(async () => {
    await controller?.stop();
    await cleanupStateDir(stateDir, { runtime });
    await assertNoLeaks(stateDir, { dirRemoved: true });
    await fake?.close();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  const ready = (name: string) => fake.get('default', name)?.status?.conditions?.find((c: any) => c.type === 'Ready');

  it('an object with spec.image runs; status.image and status.imageID say which digest', async () => {
    const obj = containerObj('img', { spec: { image: `${reg.host}/test/app:k1` } });
    delete (obj.spec as any).template;
    delete (obj.spec as any).command;
    fake.create(obj);
    await waitFor(() => ready('img')?.status === 'True', { ...WAIT, what: 'img Ready' });
    const st = fake.get('default', 'img')!.status;
    assert.equal(st.image, `${reg.host}/test/app:k1`);
    assert.equal(st.imageID, `${reg.host}/test/app@${digest}`);
    const c = await runtime.get('default/img');
    assert.equal(c?.process.state, 'running');
  });

  it("an object naming an unknown tag waits with Ready=False ErrImagePull/ImagePullBackOff and the registry's words", async () => {
    const obj = containerObj('missing', { spec: { image: `${reg.host}/test/app:nope` } });
    delete (obj.spec as any).template;
    delete (obj.spec as any).command;
    fake.create(obj);
    const c = await waitFor(
      () => {
        const r = ready('missing');
        return r && /ErrImagePull|ImagePullBackOff/.test(r.reason) ? r : undefined;
      },
      { ...WAIT, what: 'missing to report a pull error' },
    );
    assert.equal(c.status, 'False');
    assert.match(c.message, /manifest unknown/i);
    assert.equal(await runtime.get('default/missing'), undefined);
    assert.equal(ready('img')?.status, 'True', 'the other container is untouched');
  });
});
