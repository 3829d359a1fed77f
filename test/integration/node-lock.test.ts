/**
 * The node lock and per-incarnation status through the real CLI (issue 10): who holds the lock
 * is named, a SIGKILLed holder releases it, read-only commands neither wait nor sweep what the
 * holder is building, template import/rm take it; `describe` after destroy + create shows the new
 * container only; a missing hostPath and a /proc mount are refused naming the field.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { acquireNodeLock, readLockHolder } from '../../src/runtime/node-lock.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { CLI, runCli, NODE_IDS_BY_DEFAULT } from '../support/cli.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { manifest } from '../support/manifest.js';
import { isAlive } from '../support/proc.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

describe('node lock and status incarnations (real CLI, real runc)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;

  beforeEach(async () => {
    stateDir = await makeTmpStateDir();
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-lock-m-'));
  });
  afterEach(async () => {
    await cleanupStateDir(stateDir);
    await rm(dir, { recursive: true, force: true });
    await assertNoLeaks(stateDir, { dirRemoved: true });
  });

  it('a holder is named; read-only commands run beside it and sweep nothing; a SIGKILLed holder releases the lock', async () => {
    const ip = instancePaths(stateDir);
    await mkdir(ip.containersDir, { recursive: true });
    // A holder in another process (flock itself; --close: its `sleep` does not inherit the lock).
    const holder = spawn('flock', ['--exclusive', '--close', path.join(stateDir, 'acetate.lock'), 'sleep', '1000'], { stdio: 'ignore', detached: true });
    await waitFor(async () => (await runCli(['apply', '-f', dir], { stateDir })).code === 1, { what: 'the lock to be taken' });
    // What a killed acetate left mid-create: only a lock holder may remove it.
    const leftover = path.join(ip.containersDir, `.creating-${2 ** 22 + 7}-default_x-0a0b0c0d`);
    await mkdir(leftover);
    await writeFile(path.join(dir, 'a.yaml'), manifest('a'));
    for (const args of [['get'], ['plan', '-f', dir], ['validate', dir], ['template', 'list'], ['describe', 'a'], ['apply', '-f', dir, '--dry-run']]) {
      const r = await runCli(args, { stateDir, timeoutMs: 20_000 });
      assert.notEqual(r.signal, 'SIGKILL', `${args.join(' ')} hung`);
      assert.doesNotMatch(r.stderr, /in use by/, `${args.join(' ')} took the lock`);
    }
    assert.deepEqual(await readdir(ip.containersDir), [path.basename(leftover)], "a read-only command swept the holder's dir");
    const refused = await runCli(['template', 'import', 't', dir], { stateDir });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is in use by another acetate process; pass --wait/);
    process.kill(-holder.pid!, 'SIGKILL'); // flock and its sleep (their own process group)
    await waitFor(async () => (await runCli(['apply', '-f', dir], { stateDir })).code === 0, { what: 'apply after the holder died' });
    assert.deepEqual(await readdir(ip.containersDir), ['default_a'], 'the lock holder swept the leftover');
  });

  it("acquireNodeLock: the second taker gets the holder's pid and command; --wait takes it once released", async () => {
    // An older acetate's lock file, readable by every user: made root's only when taken.
    await writeFile(path.join(stateDir, 'acetate.lock'), '', { mode: 0o644 });
    const first = await acquireNodeLock([stateDir, path.join(stateDir, 'run')], { wait: false, command: 'acetate test first' });
    assert.equal(readLockHolder(path.join(stateDir, 'acetate.lock'))?.command, 'acetate test first');
    // The holder's pid and command line: root's to read only.
    for (const f of [path.join(stateDir, 'acetate.lock'), path.join(stateDir, 'run', 'acetate.lock')]) assert.equal((await stat(f)).mode & 0o777, 0o600, f);
    const other = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(other.code, 1);
    assert.match(other.stderr, new RegExp(`in use by pid ${process.pid} \\(acetate test first\\)`));
    assert.equal(other.stderr.trim().split('\n').length, 1, `not one line:\n${other.stderr}`);
    const waiting = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'apply', '-f', dir, '--allow-empty', '--wait'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...NODE_IDS_BY_DEFAULT, ...process.env },
    });
    let err = '';
    waiting.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => waiting.on('close', (c) => r(c)));
    await waitFor(() => /waiting for pid/.test(err), { what: 'the waiting line' });
    first.release();
    assert.equal(await exited, 0, err);
  });

  it("two state dirs sharing one run dir: the run dir's lock refuses the second", async () => {
    const runDir = path.join(stateDir, 'shared-run');
    const other = await makeTmpStateDir();
    const first = await acquireNodeLock([stateDir, runDir], { wait: false, command: 'acetate first' });
    try {
      await assert.rejects(acquireNodeLock([other, runDir], { wait: false, command: 'acetate second' }), (err: Error) => {
        assert.equal(err.name, 'NodeLockBusyError');
        assert.match(err.message, new RegExp(`^${runDir} is in use by pid ${process.pid} \\(acetate first\\)`));
        return true;
      });
    } finally {
      first.release();
      await rm(other, { recursive: true, force: true });
    }
  });

  it('describe after destroy and create again shows the new container, not the old pid or conditions', async () => {
    await writeFile(path.join(dir, 'a.yaml'), manifest('a'));
    const loop = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'run', '-f', dir, '--metrics-addr', '0', '--process-poll', '500ms'], {
      stdio: 'ignore',
      env: { ...NODE_IDS_BY_DEFAULT, ...process.env },
    });
    const described = async (): Promise<{ status: { pid?: number; conditions?: { type: string; status: string }[] }; actual?: { pid?: number } }> => {
      const r = await runCli(['describe', 'a', '-o', 'json'], { stateDir });
      return r.code === 0 ? JSON.parse(r.stdout) : { status: {} };
    };
    const old = await waitFor(
      async () => {
        const d = await described();
        return d.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? d : undefined;
      },
      { what: 'Ready from the loop', timeoutMs: 30_000 },
    );
    loop.kill('SIGTERM');
    await new Promise((r) => loop.on('close', r));
    const oldPid = old.actual!.pid!;
    const empty = await mkdtemp(path.join(os.tmpdir(), 'acetate-lock-e-'));
    assert.equal((await runCli(['apply', '-f', empty, '--allow-empty'], { stateDir })).code, 0);
    await rm(empty, { recursive: true });
    assert.equal((await runCli(['describe', 'a'], { stateDir })).code, 1, 'the status outlived the destroy');
    // Created again, stopped this time: nothing may show the old pid or Ready.
    await writeFile(path.join(dir, 'a.yaml'), manifest('a', { state: 'Stopped' }));
    assert.equal((await runCli(['apply', '-f', dir], { stateDir })).code, 0);
    const r = await runCli(['describe', 'a'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, new RegExp(`\\b${oldPid}\\b`));
    // Its conditions are the new container's (stopped as desired, as `get` reads it), not the old Running ones.
    assert.doesNotMatch(r.stdout, /Ready\s+True\s+Running/);
    assert.match(r.stdout, /Ready\s+True\s+Stopped\s+\S+\s+stopped as desired/);
    assert.ok(!isAlive(oldPid));
  });

  it('a missing hostPath fails the create naming the field; a /proc mount is refused by validate', async () => {
    await writeFile(path.join(dir, 'm.yaml'), manifest('m', { extra: '  mounts: [{ hostPath: /nonexistent/acetate-test, containerPath: /data }]\n' }));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /spec\.mounts\[0\]\.hostPath: '\/nonexistent\/acetate-test' does not exist on this node/);
    await writeFile(path.join(dir, 'm.yaml'), manifest('m', { extra: '  mounts: [{ hostPath: /tmp, containerPath: /proc/sys }]\n' }));
    const v = await runCli(['validate', dir], { stateDir });
    assert.equal(v.code, 1);
    assert.match(v.stderr, /m\.yaml:\d+: spec\.mounts\[0\]\.containerPath: '\/proc\/sys' is inside \/proc/);
  });
});
