/**
 * Kubernetes mode with network: bridge: the same fields through the CRD (the fake API server
 * validates with it), a published port that answers on 127.0.0.1, status.ip written back.
 */
import assert from 'node:assert/strict';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import type { Controller } from '../../src/controller/loop.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { testNetwork } from '../support/network-leaks.js';
import { freePort, httpdScript, httpGet } from '../support/network-test.js';
import { containerObj, startFake, startKubeController } from './helpers.js';

describe('kube: network bridge (real runc, real CNI plugins)', function () {
  this.timeout(120_000);
  let fake: FakeApiServer;
  let st: TmpState;
  let controller: Controller | undefined;

  before(async () => {
    ({ fake } = await startFake());
    st = await tmpState('acetate-kube-net-', { network: await testNetwork() });
  });
  after(async () => {
    await controller?.stop();
    await st?.cleanupAndAssertNoLeaks();
    await fake?.close();
  });

  it('a Container with network bridge and ports runs, answers on its hostPort, and its status carries the IP', async () => {
    const port = await freePort();
    fake.create(
      containerObj('web', {
        spec: {
          command: ['/bin/sh', '-c', httpdScript('web')],
          network: 'bridge',
          ports: [{ name: 'http', containerPort: 80, hostPort: port, hostIP: '127.0.0.1', protocol: 'TCP' }],
        },
      }),
    );
    ({ controller } = await startKubeController({ runtime: st.runtime, kubeConfig: fake.kubeConfig() }));
    const obj = await waitFor(
      () => {
        const o = fake.get('default', 'web');
        return o?.status?.ip ? o : undefined;
      },
      { timeoutMs: 30_000, what: 'status.ip' },
    );
    assert.equal(obj.status.ip, (await st.runtime.get('default/web'))?.network?.ip);
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-web\n');
    assert.equal(await httpGet(obj.status.ip as string, 80), 'hello-web\n');
    await controller.stop();
    controller = undefined;
  });
});
