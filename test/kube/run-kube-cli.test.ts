/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
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
import { spawn, type ChildProcess } from 'node:child_process';
import { PACKAGE_ROOT } from '../../src/api/crd.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { isAlive } from '../support/proc.js';
import type { FakeApiServer, KObject } from '../support/fake-apiserver.js';
import { containerObj, NODE, startFake } from './helpers.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';

const CLI = path.join(PACKAGE_ROOT, 'bin', 'acetate');
const WAIT = { timeoutMs: 30_000, intervalMs: 100 };

class Acetate {
  readonly child: ChildProcess;
  readonly lines: Record<string, any>[] = [];
  stderr = '';
  readonly exit: Promise<number | null>;

  constructor(stateDir: string, kubeconfig: string) {
    this.child = spawn(
      process.execPath,
      [
        CLI,
        '--state-dir',
        stateDir,
        'run',
        '--kube',
        '--node',
        NODE,
        '--metrics-addr',
        '127.0.0.1:0',
        '--resync',
        '1s',
        '--log-format',
        'json',
        '--log-level',
        'debug',
      ],
      { env: { ...process.env, KUBECONFIG: kubeconfig, NODE_NAME: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ level: 'raw', message: line });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  logged(re: RegExp): boolean {
    return this.lines.some((l) => re.test(String(l.message)));
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exit;
  }
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
  let acetate: Acetate | undefined;

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'acetate run --kube (real runc containers)');
    ({ fake } = await startFake());
    stateDir = await makeTmpStateDir('acetate-kcli-');
  });

  after(async () => {
    if (acetate) {
      acetate.child.kill('SIGKILL');
      await acetate.exit;
    }
    if (stateDir) {
      await cleanupStateDir(stateDir, { runtime: new RuncRuntime({ stateDir, templates: new TemplateStore({ stateDir }) }) });
      await assertNoLeaks(stateDir, { dirRemoved: true });
    }
    await fake?.close();
  });

  it('creates, reports Ready, survives its own restart without restarting containers, destroys on delete', async () => {
    const kubeconfig = path.join(stateDir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeConfigText());
    acetate = new Acetate(stateDir, kubeconfig);
    fake.create(containerObj('web'));
    const obj = await waitFor(() => (ready(fake.get('default', 'web')) ? fake.get('default', 'web') : undefined), {
      ...WAIT,
      message: () => `web Ready; acetate said:\n${acetate!.lines.map((l) => l.message).join('\n')}\n${acetate!.stderr}`,
    });
    const pid = obj.status.pid as number;
    assert.ok(isAlive(pid));
    assert.ok(acetate.logged(/watching Containers for node node-a with the field selector/));

    assert.equal(await acetate.stop(), 0);
    assert.ok(isAlive(pid), 'containers keep running when acetate stops');
    acetate = new Acetate(stateDir, kubeconfig);
    await waitFor(() => acetate!.logged(/ready: first sync done/), { ...WAIT, what: 'the new acetate to be ready' });
    assert.equal(fake.get('default', 'web')!.status.pid, pid, 'adopted, not restarted');
    assert.ok(isAlive(pid));

    fake.remove('default', 'web');
    await waitFor(() => !fake.get('default', 'web'), { ...WAIT, what: 'the object to go (finalizer removed after destroy)' });
    await waitFor(() => !isAlive(pid), { ...WAIT, what: 'the process to end' });
    assert.equal(await acetate.stop(), 0);
    acetate = undefined;
  });
});
