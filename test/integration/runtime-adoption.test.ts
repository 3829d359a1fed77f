/**
 * Containers outlive the acetate process that started them, and a new process adopts them.
 * start() and remove() converge after the process doing them was SIGKILLed at any point.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isAlive } from '../../src/util/processes.js';
import { assertNoLeaks } from '../support/leaks.js';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

const RUNTIME_MODULE = fileURLToPath(new URL('../support/tmp-state.js', import.meta.url));

/** Node code run in a child process against the state dir in argv[1]; `op` uses `rt` and `key`. */
function childCode(op: string): string {
  return `
    const { makeRuntime } = await import(${JSON.stringify(RUNTIME_MODULE)});
    const rt = makeRuntime(process.argv[1]);
    const key = process.argv[2];
    ${op}
  `;
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawn node with stdio pipes and resolve once the child exited AND its stdout/stderr are closed:
 * a conmon (or container) that inherited them would keep this pending until the timeout.
 */
function runChild(code: string, args: string[], opts: { killAfterLine?: string; killDelayMs?: number; timeoutMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not finish (or its stdio stayed open) within ${opts.timeoutMs ?? 30_000} ms; stdout=${stdout} stderr=${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (opts.killAfterLine && stdout.includes(opts.killAfterLine)) {
        opts.killAfterLine = undefined;
        setTimeout(() => child.kill('SIGKILL'), opts.killDelayMs ?? 0);
      }
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    // 'close' fires only after the process exited and all its stdio streams ended.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('RuncRuntime across acetate processes', function () {
  this.timeout(120_000);
  let st: TmpState;

  before(async () => {
    st = await tmpState();
  });

  after(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  it('a container started by a process that exited keeps running and is adopted by a new process', async () => {
    const r = await runChild(
      childCode(`
        await rt.create({ namespace: 'default', name: 'orphan', spec: ${JSON.stringify(testSpec({ command: ['sh', '-c', 'echo alive; exec sleep 1000'] }))}, source: ${JSON.stringify(FILE_SOURCE)} });
        const { pid } = await rt.start(key);
        console.log(JSON.stringify({ pid }));
      `),
      [st.dir, 'default/orphan'],
    );
    assert.equal(r.code, 0, r.stderr);
    const { pid } = JSON.parse(r.stdout.trim()) as { pid: number };
    assert.ok(await isAlive(pid));

    const fresh = makeRuntime(st.dir);
    const list = await fresh.list();
    assert.equal(list.length, 1);
    assert.equal(list[0]!.process.state, 'running');
    assert.equal(list[0]!.process.pid, pid);
    await waitFor('log line', async () => (await fresh.logs('default/orphan')).includes('alive'));
    assert.deepEqual(await fresh.start('default/orphan'), { pid }, 'the adopted container is left running');
    // The init passes SIGTERM on before the SIGKILL of a zero grace period lands, or not: either way it ended.
    assert.ok([137, 143].includes((await fresh.stop('default/orphan', { graceSeconds: 0 })).exitCode!));
    await fresh.remove('default/orphan', { keepPrivateArea: false });
    await assertNoLeaks(st.dir);
  });

  for (const delay of [0, 10, 30, 60, 120, 250]) {
    it(`start() then remove() converge after the process doing them is SIGKILLed (${delay} ms in)`, async () => {
      const key = `default/crash-${delay}`;
      const spec = testSpec({ command: ['sleep', '1000'], resources: { memoryBytes: 64 * 2 ** 20, pids: 20 } });
      await st.runtime.create({ namespace: 'default', name: `crash-${delay}`, spec, source: FILE_SOURCE });

      // Killed while starting: the next start() must still succeed.
      await runChild(childCode(`console.log('go'); await rt.start(key); console.log('started');`), [st.dir, key], {
        killAfterLine: 'go',
        killDelayMs: delay,
      });
      const { pid } = await st.runtime.start(key);
      assert.ok(await isAlive(pid));
      assert.equal((await st.runtime.get(key))!.process.state, 'running');

      // Killed while removing: remove() again must leave nothing.
      await runChild(childCode(`console.log('go'); await rt.remove(key, { keepPrivateArea: false }); console.log('removed');`), [st.dir, key], {
        killAfterLine: 'go',
        killDelayMs: delay,
      });
      await st.runtime.remove(key, { keepPrivateArea: false });
      await st.runtime.remove(key, { keepPrivateArea: false });
      assert.equal(await isAlive(pid), false);
      assert.equal(await st.runtime.get(key), undefined);
      await assertNoLeaks(st.dir);
    });
  }
});
