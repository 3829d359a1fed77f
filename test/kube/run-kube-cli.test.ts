/**
 * `acetate run --kube` as a user runs it: the real CLI as a child process, KUBECONFIG pointing at
 * the fake API server, real runc containers. Create → running and Ready; SIGTERM → containers
 * keep running; a new acetate adopts them; delete → destroyed, object gone.
 *
 * Skipped (with a message) without root, runc or conmon.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { isAlive } from '../support/proc.js';
import type { FakeApiServer, KObject } from '../support/fake-apiserver.js';
import { containerObj, NODE, startFake } from './helpers.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';
import { BIN } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';

const WAIT = { timeoutMs: 30_000, intervalMs: 100 };

/** `acetate run --kube` as installed (bin/acetate), with KUBECONFIG pointing at the fake. */
function startAcetate(stateDir: string, kubeconfig: string): CliProcess {
  return new CliProcess(['run', '--kube', '--node', NODE, '--metrics-addr', '127.0.0.1:0', '--resync', '1s', '--log-format', 'json', '--log-level', 'debug'], {
    stateDir,
    entry: BIN,
    env: { KUBECONFIG: kubeconfig, NODE_NAME: '' },
  });
}

function ready(o: KObject | undefined): boolean {
  return (
    o?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') &&
    o.status.observedGeneration === o.metadata.generation
  );
}

describe('kube: acetate run --kube (CLI, real runc)', function () {
  this.timeout(180_000);
  let fake: FakeApiServer;
  let stateDir: string;
  let acetate: CliProcess | undefined;

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'acetate run --kube (real runc containers)');
    ({ fake } = await startFake());
    stateDir = await makeTmpStateDir('acetate-kcli-');
  });

  after(async () => {
    await acetate?.stop('SIGKILL');
    if (stateDir) {
      await cleanupStateDir(stateDir, { runtime: new RuncRuntime({ stateDir, templates: new TemplateStore({ stateDir }) }) });
      await assertNoLeaks(stateDir, { dirRemoved: true });
    }
    await fake?.close();
  });

  it('creates, reports Ready, survives its own restart without restarting containers, destroys on delete', async () => {
    const kubeconfig = path.join(stateDir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeConfigText());
    acetate = startAcetate(stateDir, kubeconfig);
    fake.create(containerObj('web'));
    const obj = await waitFor(() => (ready(fake.get('default', 'web')) ? fake.get('default', 'web') : undefined), {
      ...WAIT,
      message: () => `web Ready; acetate said:\n${acetate!.lines.map((l) => l.message).join('\n')}\n${acetate!.stderr}`,
    });
    const pid = obj.status.pid as number;
    assert.ok(isAlive(pid));
    assert.ok(acetate.logged(/watching Containers for node node-a with the field selector/));

    assert.equal((await acetate.stop()).code, 0);
    assert.ok(isAlive(pid), 'containers keep running when acetate stops');
    acetate = startAcetate(stateDir, kubeconfig);
    await waitFor(() => acetate!.logged(/ready: first sync done/), { ...WAIT, what: 'the new acetate to be ready' });
    assert.equal(fake.get('default', 'web')!.status.pid, pid, 'adopted, not restarted');
    assert.ok(isAlive(pid));

    fake.remove('default', 'web');
    await waitFor(() => !fake.get('default', 'web'), { ...WAIT, what: 'the object to go (finalizer removed after destroy)' });
    await waitFor(() => !isAlive(pid), { ...WAIT, what: 'the process to end' });
    assert.equal((await acetate.stop()).code, 0);
    acetate = undefined;
  });
});
