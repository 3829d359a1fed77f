/**
 * The idmap server (acetate-idmap --serve, src/runtime/walls/idmap.ts): one process per acetate
 * process makes every start's idmapped layer mounts, so a start spawns nothing of its own; its
 * mounts still never outlive the acetate that asked for them, and a server that died is replaced.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IDMAP_HELPER, mountIdmappedLayers, releaseIdmappedLayers } from '../../src/runtime/walls/idmap.js';
import { userNamespaceFor } from '../../src/runtime/walls/userns.js';
import { isAlive } from '../../src/util/processes.js';
import { waitFor } from '../support/wait.js';

const userns = userNamespaceFor(false, { hostID: 1_300_000_000, size: 65_536 })!;

/** Mount lines under root (only this test's: other test files mount beside it). */
async function mountsUnder(root: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(root));
}

/** The idmap servers this process (or `parent`) started. */
async function serversOf(parent = process.pid): Promise<number[]> {
  const out: number[] = [];
  for (const task of await readdir(`/proc/${parent}/task`)) {
    const children = (await readFile(`/proc/${parent}/task/${task}/children`, 'utf8')).trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline === `${IDMAP_HELPER}\0--serve\0`) out.push(pid);
    }
  }
  return out;
}

describe('the idmap server: one process for every start, holds that never outlive acetate', function () {
  this.timeout(60_000);
  let root: string;
  let layer: string;
  beforeEach(async () => {
    root = await mkdtemp('/tmp/acetate-idmap-server-');
    layer = path.join(root, 'layer');
    await mkdir(layer);
    await writeFile(path.join(layer, 'f'), 'x');
  });
  afterEach(async () => {
    for (const d of await readdir(root)) if (d.startsWith('lower')) await releaseIdmappedLayers(path.join(root, d)).catch(() => undefined);
    assert.deepEqual(await mountsUnder(root), []);
    await rm(root, { recursive: true, force: true });
  });

  it('60 holds made and released by one server process: each mapped while held, nothing left mounted or open after', async () => {
    const first = await mountIdmappedLayers(path.join(root, 'lower0'), [layer], userns);
    assert.equal((await stat(path.join(first[0]!, 'f'))).uid, 1_300_000_000);
    await releaseIdmappedLayers(path.join(root, 'lower0'));
    const [server] = await serversOf();
    assert.ok(server, 'a server runs');
    const fds = (await readdir(`/proc/${server}/fd`)).length;
    // Eight at a time, as a `--concurrency 8` apply's starts would.
    for (let round = 0; round < 60; round += 8) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const dir = path.join(root, `lower${round + i + 1}`);
          const [t0, t1] = await mountIdmappedLayers(dir, [layer, '/'], userns);
          assert.equal((await stat(path.join(t0!, 'f'))).uid, 1_300_000_000);
          assert.equal((await stat(path.join(t1!, 'etc', 'passwd'))).uid, 1_300_000_000);
          await releaseIdmappedLayers(dir);
        }),
      );
    }
    assert.deepEqual(await mountsUnder(root), []);
    assert.deepEqual(await serversOf(), [server], 'the same server, no other');
    assert.equal((await readdir(`/proc/${server}/fd`)).length, fds, 'no fd left open in the server (namespaces, trees)');
  });

  it('the server killed while it holds mounts: the release detaches them itself, and the next start gets a new server', async () => {
    const dir = path.join(root, 'lower');
    await mountIdmappedLayers(dir, [layer], userns);
    const [server] = await serversOf();
    process.kill(server!, 'SIGKILL');
    await waitFor(async () => !(await isAlive(server!)), { timeoutMs: 5_000, what: 'the server gone' });
    assert.equal((await mountsUnder(root)).length, 1, 'a killed server cannot detach');
    await releaseIdmappedLayers(dir);
    assert.deepEqual(await mountsUnder(root), []);
    const [t0] = await mountIdmappedLayers(dir, [layer], userns);
    assert.equal((await stat(path.join(t0!, 'f'))).uid, 1_300_000_000);
    const now = await serversOf();
    assert.equal(now.length, 1);
    assert.notEqual(now[0], server);
    await releaseIdmappedLayers(dir);
  });

  it('acetate killed while its starts hold mounts: the server detaches every hold and exits; an idle server keeps no process alive', async () => {
    const module = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/runtime/walls/idmap.js');
    const userJson = JSON.stringify(userns);
    // Holds two starts' mounts, says so, and waits (for the kill).
    const holding = `import(${JSON.stringify(module)}).then(async (m) => {
      await m.mountIdmappedLayers(${JSON.stringify(path.join(root, 'lowerA'))}, [${JSON.stringify(layer)}], ${userJson});
      await m.mountIdmappedLayers(${JSON.stringify(path.join(root, 'lowerB'))}, ['/'], ${userJson});
      console.log('held');
      setInterval(() => undefined, 1000);
    })`;
    const child = spawn(process.execPath, ['-e', holding], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout, 'data');
    const [server] = await serversOf(child.pid);
    assert.ok(server);
    assert.equal((await mountsUnder(root)).length, 2);
    child.kill('SIGKILL');
    await waitFor(async () => !(await isAlive(server!)), { timeoutMs: 5_000, what: 'the server ended with its acetate' });
    assert.deepEqual(await mountsUnder(root), [], 'every hold detached by the server');

    // Mounts and releases once, then has nothing left to do: it must exit by itself.
    const once_ = `import(${JSON.stringify(module)}).then(async (m) => {
      await m.mountIdmappedLayers(${JSON.stringify(path.join(root, 'lowerC'))}, [${JSON.stringify(layer)}], ${userJson});
      await m.releaseIdmappedLayers(${JSON.stringify(path.join(root, 'lowerC'))});
    })`;
    const idle = spawn(process.execPath, ['-e', once_], { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => idle.kill('SIGKILL'), 10_000);
    const [code] = (await once(idle, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, 'the node process ended by itself');
  });
});
