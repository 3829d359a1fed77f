/**
 * The idmap server (acetate-idmap --serve, src/runtime/walls/idmap.ts): one process per acetate
 * process makes every start's idmapped layer mounts, so a start spawns nothing of its own; its
 * mounts still never outlive the acetate that asked for them, and a server that died is replaced.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IDMAP_HELPER, mountIdmappedLayers, releaseIdmappedLayers } from '../../src/runtime/walls/idmap.js';
import { userNamespaceFor } from '../../src/runtime/walls/userns.js';
import { exec } from '../../src/util/exec.js';
import { isAlive } from '../../src/util/processes.js';
import { waitFor } from '../support/wait.js';
import { runNodeScript } from '../support/node-script.js';

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

/** A request as acetate writes it: NUL-terminated fields. */
const request = (...f: string[]) => Buffer.from(f.map((x) => `${x}\0`).join(''));

/** A server spoken to directly (no idmap.ts): its process, and its first n answer lines once they came. */
function rawServer(): { p: ChildProcessByStdio<Writable, Readable, null>; lines: (n: number) => Promise<string[]> } {
  const p = spawn(IDMAP_HELPER, ['--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const lines = (n: number) =>
    waitFor(() => (out.split('\n').length > n ? out.split('\n').slice(0, n) : undefined), { timeoutMs: 5_000, what: `${n} answers` });
  return { p, lines };
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

    // Mounts and releases once (saying which processes it started), then has nothing left to do:
    // it must exit by itself, and its server with it.
    const once_ = `import(${JSON.stringify(module)}).then(async (m) => {
      await m.mountIdmappedLayers(${JSON.stringify(path.join(root, 'lowerC'))}, [${JSON.stringify(layer)}], ${userJson});
      console.log(require('fs').readFileSync('/proc/' + process.pid + '/task/' + process.pid + '/children', 'utf8'));
      await m.releaseIdmappedLayers(${JSON.stringify(path.join(root, 'lowerC'))});
    })`;
    const { exitCode, stdout } = await runNodeScript(once_);
    assert.equal(exitCode, 0, 'the node process ended by itself');
    const started = stdout.trim().split(/\s+/).map(Number).filter(Boolean);
    assert.ok(started.length >= 1, 'it had started its server');
    for (const pid of started) await waitFor(async () => !(await isAlive(pid)), { timeoutMs: 5_000, what: `its server ${pid} gone` });
  });

  it('acetate killed while its starts wait on a busy server: the holds made after it died are detached too', async () => {
    const module = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/runtime/walls/idmap.js');
    const userJson = JSON.stringify(userns);
    // One hold made, then four asked for while the server is stopped (as at --concurrency 8 when
    // acetate dies): the server makes them after acetate is gone and cannot answer them.
    const code = `import(${JSON.stringify(module)}).then(async (m) => {
      await m.mountIdmappedLayers(${JSON.stringify(path.join(root, 'lower0'))}, [${JSON.stringify(layer)}], ${userJson});
      console.log('held');
      process.stdin.once('data', () => {
        for (let i = 1; i <= 4; i++) m.mountIdmappedLayers(${JSON.stringify(root)} + '/lower' + i, [${JSON.stringify(layer)}], ${userJson}).catch(() => {});
        setTimeout(() => console.log('asked'), 300);
      });
    })`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(child.stdout, 'data');
    const [server] = await serversOf(child.pid);
    assert.ok(server);
    process.kill(server!, 'SIGSTOP');
    try {
      child.stdin.write('go\n');
      await once(child.stdout, 'data');
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    } finally {
      process.kill(server!, 'SIGCONT');
    }
    await waitFor(async () => !(await isAlive(server!)), { timeoutMs: 5_000, what: 'the server ended with its acetate' });
    assert.deepEqual(await mountsUnder(root), [], 'every hold detached, those it could not answer too');
  });

  it("a server that ends late (its acetate died while it was stopped) detaches its own mounts only, never a newer acetate's at the same path", async () => {
    const target = path.join(root, 't');
    await mkdir(target);
    const stale = rawServer();
    stale.p.stdin.write(request('1', '6', 'hold', '1', '1300000000', '65536', layer, target));
    assert.deepEqual(await stale.lines(1), ['1 ready 1']);
    // The newer acetate's scrub detaches what is there (by path), then its start holds it anew.
    await exec(IDMAP_HELPER, ['--release', target]);
    const newer = rawServer();
    newer.p.stdin.write(request('1', '6', 'hold', '1', '1300000000', '65536', '/', target));
    assert.deepEqual(await newer.lines(1), ['1 ready 1']);
    assert.equal((await stat(path.join(target, 'etc', 'passwd'))).uid, 1_300_000_000, "the newer hold's mount is there");
    const staleGone = once(stale.p, 'exit');
    stale.p.stdin.end(); // the late end: it detaches every hold it still has
    await staleGone;
    assert.equal((await mountsUnder(root)).length, 1, 'the newer mount is still there');
    assert.equal((await stat(path.join(target, 'etc', 'passwd'))).uid, 1_300_000_000);
    const newerGone = once(newer.p, 'exit');
    newer.p.stdin.end();
    await newerGone;
    assert.deepEqual(await mountsUnder(root), []);
  });

  it('the protocol: a request in pieces, two in one write, a bad one (every hold detached, exit 1)', async () => {
    const targets = [path.join(root, 'p1'), path.join(root, 'p2')];
    for (const t of targets) await mkdir(t);
    const { p: server, lines } = rawServer();
    const hold = (id: string, t: string) => request(id, '6', 'hold', id, '1300000000', '65536', layer, t);
    const first = hold('1', targets[0]!);
    for (const byte of first) {
      server.stdin.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await lines(1), ['1 ready 1']);
    server.stdin.write(
      Buffer.concat([hold('2', targets[1]!), request('3', '2', 'release', '9'), request('4', '6', 'hold', '1', '1300000000', '65536', layer, targets[1]!)]),
    );
    assert.deepEqual((await lines(4)).slice(1), ['2 ready 1', '3 error no such hold', "4 error a hold's id must be 1 to 20 digits, not one in use"]);
    assert.equal((await mountsUnder(root)).length, 2);
    const exited = once(server, 'exit');
    server.stdin.write(request('x', '1', 'release'));
    assert.deepEqual(await exited, [1, null], 'a malformed request ends it');
    assert.deepEqual(await mountsUnder(root), [], 'and every hold it had is detached');
  });
});
