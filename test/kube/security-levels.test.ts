/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server */
/**
 * Security levels in Kubernetes mode, against the fake API server with real runc containers: the
 * level of each Container is its namespace's pod-security.kubernetes.io/enforce label (else the
 * node's setting); a refused Container is not created, and gets Synced=False reason Forbidden and
 * a Forbidden event naming the rule; relabelling the namespace takes effect without touching the
 * Container object; a running Container its namespace's new level refuses is held, not destroyed;
 * warn gives a Warning event and audit a log line.
 */
import assert from 'node:assert/strict';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import type { FakeApiServer, KObject } from '../support/fake-apiserver.js';
import type { Controller } from '../../src/controller/loop.js';
import { MemoryLogger } from '../../src/contracts/logger.js';
import { parseInlineSetting } from '../../src/policy/node-levels.js';
import { levelLabel } from '../../src/policy/namespace-labels.js';
import { containerObj, startFake, startKubeController } from './helpers.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';

const WAIT = { timeoutMs: 30_000, intervalMs: 100 };
const condition = (obj: KObject | undefined, type: string): Record<string, any> | undefined =>
  obj?.status?.conditions?.find((c: { type: string }) => c.type === type);

describe('kube: security levels from namespace labels (fake API server, real containers)', function () {
  this.timeout(180_000);
  let fake: FakeApiServer;
  let st: TmpState;
  let controller: Controller | undefined;
  const log = new MemoryLogger();

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'kube security levels (real runc containers)');
    ({ fake } = await startFake());
    st = await tmpState('acetate-kube-levels-');
    fake.setNamespace('tenant-a', { [levelLabel('enforce')]: 'baseline' });
    fake.setNamespace('infra', { [levelLabel('enforce')]: 'privileged' });
    fake.setNamespace('plain');
    fake.setNamespace('watched', { [levelLabel('enforce')]: 'privileged', [levelLabel('warn')]: 'baseline', [levelLabel('audit')]: 'restricted' });
    // The node's setting: baseline for unlabelled namespaces. Containers here use the node's ids by
    // default (hostUsersByDefault false: the user-namespace rule has its own unit tests).
    const security = parseInlineSetting('default=baseline', '$ACETATE_POD_SECURITY', { hostUsersByDefault: false });
    ({ controller } = await startKubeController({ runtime: st.runtime, kubeConfig: fake.kubeConfig(), logger: log, security }));
    await waitFor(() => controller!.ready(), { ...WAIT, what: 'the loop to be ready' });
  });

  after(async () => {
    await controller?.stop();
    if (st) {
      await st.cleanup();
      await assertNoLeaks(st.dir, { dirRemoved: true });
    }
    await fake?.close();
  });

  const bad: Record<string, { spec: Record<string, unknown>; rule: string; field: string }> = {
    etc: { spec: { mounts: [{ hostPath: '/etc', containerPath: '/node-etc' }] }, rule: 'hostPathVolumes', field: 'spec.mounts[0].hostPath' },
    sysadmin: {
      spec: { securityContext: { capabilities: { add: ['SYS_ADMIN'] } } },
      rule: 'capabilities_baseline',
      field: 'spec.securityContext.capabilities.add[0]',
    },
    hostnet: { spec: { network: 'host', securityContext: { hostUsers: true } }, rule: 'hostNamespaces', field: 'spec.network' },
  };
  const forbidden = (ns: string, name: string) => {
    const o = fake.get(ns, name);
    const c = condition(o, 'Synced');
    return c?.status === 'False' && c.reason === 'Forbidden' ? c : undefined;
  };
  const running = async (key: string) => ((await st.runtime.get(key))?.process.state === 'running' ? await st.runtime.get(key) : undefined);

  it('under baseline (a label, or no label at all): the node /etc, SYS_ADMIN and the host network are refused, named by rule and field; a plain one runs', async () => {
    for (const ns of ['tenant-a', 'plain']) {
      for (const [name, b] of Object.entries(bad)) fake.create(containerObj(name, { namespace: ns, spec: b.spec }));
      fake.create(containerObj('fine', { namespace: ns }));
    }
    for (const ns of ['tenant-a', 'plain']) {
      await waitFor(() => running(`${ns}/fine`), { ...WAIT, what: `${ns}/fine running` });
      for (const [name, b] of Object.entries(bad)) {
        const c = await waitFor(() => forbidden(ns, name), { ...WAIT, what: `${ns}/${name} Forbidden` });
        assert.match(c.message, new RegExp(`${b.field.replace(/[[\].]/g, '\\$&')}: forbidden by security level baseline \\(rule ${b.rule}\\)`));
        assert.match(
          c.message,
          ns === 'plain' ? /namespace plain has no pod-security.kubernetes.io\/enforce label/ : /label pod-security.kubernetes.io\/enforce=baseline/,
        );
        assert.match(c.message, /the container is not created/);
        assert.equal(await st.runtime.get(`${ns}/${name}`), undefined, `${ns}/${name} not created`);
        await waitFor(
          () =>
            fake
              .events(ns)
              .find((e) => e.involvedObject.name === name && e.reason === 'Forbidden' && e.type === 'Warning' && e.message.includes(`rule ${b.rule}`)),
          { ...WAIT, what: `the Forbidden event of ${ns}/${name}` },
        );
      }
    }
  });

  it('under privileged (label) the same Containers run', async () => {
    for (const [name, b] of Object.entries(bad)) fake.create(containerObj(name, { namespace: 'infra', spec: b.spec }));
    for (const name of Object.keys(bad)) await waitFor(() => running(`infra/${name}`), { ...WAIT, what: `infra/${name} running` });
    // The status is written after the create: wait for it, as the relabel case does.
    await waitFor(() => condition(fake.get('infra', 'sysadmin'), 'Synced')?.status === 'True', { ...WAIT, what: 'infra/sysadmin Synced' });
  });

  it('relabelling the namespace privileged creates them; back to baseline holds the running one (not destroyed, Forbidden)', async () => {
    fake.setNamespace('tenant-a', { [levelLabel('enforce')]: 'privileged' });
    const c = await waitFor(() => running('tenant-a/sysadmin'), { ...WAIT, what: 'tenant-a/sysadmin created after the relabel' });
    const pid = c!.process.pid;
    await waitFor(() => condition(fake.get('tenant-a', 'sysadmin'), 'Synced')?.status === 'True', { ...WAIT, what: 'Synced' });
    fake.setNamespace('tenant-a', { [levelLabel('enforce')]: 'baseline' });
    const held = await waitFor(() => forbidden('tenant-a', 'sysadmin'), { ...WAIT, what: 'tenant-a/sysadmin Forbidden again' });
    assert.match(held.message, /held as it is/);
    const still = await st.runtime.get('tenant-a/sysadmin');
    assert.equal(still?.process.state, 'running');
    assert.equal(still?.process.pid, pid, 'the same process: not restarted, not destroyed');
  });

  it('warn: a Warning event; audit: a log line; the Container runs (enforce privileged)', async () => {
    fake.create(containerObj('loud', { namespace: 'watched', spec: bad.sysadmin!.spec }));
    await waitFor(() => running('watched/loud'), { ...WAIT, what: 'watched/loud running' });
    const ev = await waitFor(() => fake.events('watched').find((e) => e.involvedObject.name === 'loud' && e.reason === 'SecurityLevelWarning'), {
      ...WAIT,
      what: 'the warning event',
    });
    assert.equal(ev.type, 'Warning');
    assert.match(
      ev.message,
      /would be forbidden by security level baseline \(pod-security.kubernetes.io\/warn\): spec.securityContext.capabilities.add\[0\]: rule capabilities_baseline/,
    );
    const line = log.lines.find((l) => l.message.startsWith('audit: watched/loud'));
    assert.ok(line, 'an audit log line');
    assert.match(line.message, /security level restricted .*rule capabilities_restricted/);
  });
});
