/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * Against a REAL Kubernetes cluster (not the fake): runs only when KUBECONFIG is set.
 *
 *   KUBECONFIG=~/.kube/config ACETATE_E2E_NODE=$(hostname) \
 *     npx mocha --no-config --timeout 300000 dist/test/kube/e2e-real-cluster.test.js
 *
 * This machine plays the node ACETATE_E2E_NODE (or $NODE_NAME) with the real runc runtime, so
 * it needs root, runc and conmon. The test installs the CRD if it is missing (needs rights to create CRDs), works in a
 * fresh namespace acetate-e2e-<random> and deletes it at the end. It checks what the fake cannot
 * prove: that the real API server accepts the CRD (structural schema, CEL rules, selectableFields
 * on ≥ 1.31 or the label fallback below), the status subresource, finalizers and Events.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import type { Controller } from '../../src/controller/loop.js';
import type { KubeSource } from '../../src/sources/kube/source.js';
import { loadKubeConfig } from '../../src/sources/kube/config.js';
import { FINALIZER, GROUP, NODE_LABEL, PLURAL, VERSION } from '../../src/sources/kube/constants.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { assertNoLeaks } from '../support/leaks.js';
import { waitFor } from '../support/wait.js';
import { missingForContainers, requirePrerequisites, skipBecause } from '../support/prerequisites.js';
import { startKubeController } from './helpers.js';

const HOW = `set KUBECONFIG (a cluster where you may create CRDs and namespaces) and ACETATE_E2E_NODE (the node name this machine plays), run as root with runc and conmon installed:
      KUBECONFIG=~/.kube/config ACETATE_E2E_NODE=$(hostname) npx mocha --no-config --timeout 300000 dist/test/kube/e2e-real-cluster.test.js`;
const WAIT = { timeoutMs: 90_000, intervalMs: 500 };

describe('kube: e2e against a real cluster', function () {
  this.timeout(300_000);
  let kc: KubeConfig;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;
  let node: string;
  let ns: string;
  let st: TmpState | undefined;
  let source: KubeSource | undefined;
  let controller: Controller | undefined;
  let log: MemoryLogger;

  before(async function () {
    // A real cluster is optional (the fake API server covers the same paths in test/kube); asking
    // for it (KUBECONFIG and the node's name) and then lacking root or runc is a failure.
    node = process.env.ACETATE_E2E_NODE ?? process.env.NODE_NAME ?? '';
    if (!process.env.KUBECONFIG || !node) skipBecause(this, `no real cluster (KUBECONFIG and ACETATE_E2E_NODE). To run it, ${HOW}`);
    requirePrerequisites(await missingForContainers(), 'the e2e against a real cluster');
    kc = loadKubeConfig();
    custom = kc.makeApiClient(CustomObjectsApi);
    core = kc.makeApiClient(CoreV1Api);
    await ensureCrd(kc);
    ns = `acetate-e2e-${randomBytes(3).toString('hex')}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    st = await tmpState('acetate-e2e-');
    log = new MemoryLogger();
    ({ source, controller } = await startKubeController({
      runtime: st.runtime,
      kubeConfig: kc,
      node,
      logger: log,
      fast: false,
      controller: { resyncMs: 2000 },
    }));
  });

  after(async () => {
    await controller?.stop();
    if (ns) {
      // objects left with our finalizer would keep the namespace terminating
      const list = (await custom
        .listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL })
        .catch(() => ({ items: [] }))) as { items: any[] };
      for (const o of list.items) {
        await custom
          .patchNamespacedCustomObject(
            { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: o.metadata.name, body: [{ op: 'remove', path: '/metadata/finalizers' }] },
            setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
          )
          .catch(() => undefined);
      }
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
    if (st) {
      await st.cleanup();
      await assertNoLeaks(st.dir, { dirRemoved: true });
    }
  });

  const get = async (name: string): Promise<any | undefined> =>
    custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name }).catch((e) => {
      if (e.code === 404) return undefined;
      throw e;
    });

  function obj(name: string, memory: string): Record<string, unknown> {
    return {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Container',
      metadata: { name, namespace: ns, labels: { [NODE_LABEL]: node } },
      spec: {
        nodeName: node,
        template: 'host',
        command: ['/bin/sh', '-c', 'exec sleep 100000'],
        terminationGracePeriodSeconds: 1,
        resources: { cpu: '250m', memory },
      },
    };
  }

  it('the API server rejects bad quantities with the CRD rules', async () => {
    await assert.rejects(
      custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: obj('tiny', '512') }),
      (e: { code: number; body: unknown }) => e.code === 422 && /at least 4Mi/.test(JSON.stringify(e.body)),
    );
  });

  it('create → finalizer, running container, status Ready; resize in place; Events; delete → destroyed, object gone', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: obj('web', '64Mi') });
    const ready = await waitFor(
      async () => {
        const o = await get('web');
        const c = o?.status?.conditions?.find((x: any) => x.type === 'Ready');
        return c?.status === 'True' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
      },
      {
        ...WAIT,
        message: () =>
          `web Ready (log: ${log.lines
            .slice(-20)
            .map((l) => l.message)
            .join(' | ')})`,
      },
    );
    assert.deepEqual(ready.metadata.finalizers, [FINALIZER]);
    const pid = ready.status.pid;
    assert.equal((await st!.runtime.get(`${ns}/web`))?.process.pid, pid);

    await custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: { spec: { resources: { memory: '128Mi' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const resized = await waitFor(
      async () => {
        const o = await get('web');
        return o?.status?.resources?.memory === '128Mi' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
      },
      { ...WAIT, what: 'the resize in status' },
    );
    assert.equal(resized.status.pid, pid, 'same process');

    await waitFor(
      async () => {
        const evs = (await core.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.involvedObject.name === 'web').map((e) => e.reason);
        return evs.includes('Created') && evs.includes('Resized');
      },
      { ...WAIT, what: 'Created and Resized events' },
    );

    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web' });
    await waitFor(async () => (await get('web')) === undefined, { ...WAIT, what: 'the object to go' });
    assert.equal(await st!.runtime.get(`${ns}/web`), undefined);
    assert.ok(source!.health().selector, 'a server-side selector was chosen');
    console.log(`      (node selection used: ${source!.health().selector})`);
  });
});

async function ensureCrd(kc: KubeConfig): Promise<void> {
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const want = yaml.load(readFileSync(path.join(PACKAGE_ROOT, 'crds', 'containers.acetate.dev.yaml'), 'utf8')) as V1CustomResourceDefinition;
  const name = want.metadata!.name!;
  const have = await ext.readCustomResourceDefinition({ name }).catch(() => undefined);
  if (!have) await ext.createCustomResourceDefinition({ body: want });
  else await ext.replaceCustomResourceDefinition({ name, body: { ...want, metadata: { ...want.metadata, resourceVersion: have.metadata!.resourceVersion } } });
  await waitFor(
    async () => {
      const c = await ext.readCustomResourceDefinition({ name });
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
    },
    { timeoutMs: 60_000, what: 'the CRD to be Established' },
  );
}
