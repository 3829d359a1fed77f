/**
 * `acetate exec` and `acetate logs` through the real CLI, as a user runs them, on real containers:
 * exec joins the container (its PID 1 is the init, its hostname, its files), returns the exit
 * code, forwards stdin, works under a pseudo-terminal (script(1)); logs --timestamps, --since,
 * -f until the container is destroyed, and a log kept under its size limit while followed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { CLI, runCli, NODE_IDS_BY_DEFAULT } from '../support/cli.js';
import { type CliDirs, cliDirs, tmpState } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';

/** The CLI with stdin fed from `input`, run by `wrap` (e.g. script for a terminal). */
function cli(stateDir: string, args: string[], opts: { input?: string; wrap?: (cmd: string) => [string, string[]] } = {}) {
  const argv = [CLI, '--state-dir', stateDir, ...args];
  const quoted = [process.execPath, ...argv].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const [file, fargs] = opts.wrap ? opts.wrap(quoted) : [process.execPath, argv];
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(file, fargs, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

describe('acetate exec and logs (real runc, real CLI)', function () {
  this.timeout(90_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'box.yaml'), manifest('box', { script: 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.2; done' }));
    await writeFile(path.join(dir, 'off.yaml'), manifest('off', { state: 'Stopped' }));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  it("exec runs in the container: PID 1 is the init running the command, the hostname is the container's", async () => {
    const r = await cli(stateDir, ['exec', 'box', '--', 'cat', '/proc/1/cmdline']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\0').slice(0, 3), ['/dev/.acetate-init', '--', '/bin/sh']);
    const h = await cli(stateDir, ['exec', 'box', '--', 'hostname']);
    assert.equal(h.stdout.trim(), 'box');
    // Its own cgroups at /sys/fs/cgroup, read-only: its memory limit (manifest(): 64Mi) is readable inside.
    // The tmpfs holding the hierarchies too (runc 1.1.5 leaves it read-write: READONLY_PATHS).
    const cg = await cli(stateDir, [
      'exec',
      'box',
      '--',
      'sh',
      '-c',
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /sys/fs/cgroup/memory/x 2>&1; mkdir /sys/fs/cgroup/x 2>&1',
    ]);
    const [limit, touched, made] = cg.stdout.trim().split('\n');
    assert.equal(Number(limit), 64 * 2 ** 20, cg.stdout + cg.stderr);
    assert.match(touched ?? '', /Read-only file system/);
    assert.match(made ?? '', /Read-only file system/);
  });

  it("exec writes a file the container sees, and returns the command's exit code", async () => {
    const w = await cli(stateDir, ['exec', 'box', '--', 'sh', '-c', 'echo from-exec > /tmp/marker']);
    assert.equal(w.code, 0, w.stderr);
    const pid = Number((await cli(stateDir, ['exec', 'box', '--', 'sh', '-c', 'echo $$'])).stdout.trim());
    assert.ok(pid > 1, 'a process of its own in the container');
    // The container's PID 1 sees it through its root (from the host).
    const box = JSON.parse((await runCli(['get', 'box', '-o', 'json'], { stateDir })).stdout) as { status: { pid: number } };
    assert.equal(await readFile(`/proc/${box.status.pid}/root/tmp/marker`, 'utf8'), 'from-exec\n');
    assert.equal((await cli(stateDir, ['exec', 'box', '--', 'sh', '-c', 'exit 3'])).code, 3);
  });

  it('exec -i forwards stdin; without -i the command gets none', async () => {
    const r = await cli(stateDir, ['exec', '-i', 'box', '--', 'sh', '-c', 'tr a-z A-Z'], { input: 'piped in\n' });
    assert.equal(r.stdout, 'PIPED IN\n');
    const n = await cli(stateDir, ['exec', 'box', '--', 'cat'], { input: 'ignored\n' });
    assert.equal(n.stdout, '');
  });

  it('exec -it: an interactive shell under a pseudo-terminal (script)', async () => {
    const r = await cli(stateDir, ['exec', '-it', 'box', '--', 'sh'], {
      wrap: (cmd) => ['script', ['-qec', cmd, '/dev/null']],
      input: 'tty; echo answer=$((6*7)); exit 5\n',
    });
    assert.match(r.stdout, /\/dev\/pts\/\d+/, 'the shell has a terminal');
    assert.match(r.stdout, /answer=42/);
    assert.equal(r.code, 5, "script -e returns the shell's exit code");
  });

  it('exec into a stopped container says so', async () => {
    const r = await cli(stateDir, ['exec', 'off', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /default\/off is not running/);
    assert.equal((await cli(stateDir, ['exec', 'nope', '--', 'true'])).code, 1);
  });

  it('logs --timestamps prefixes RFC 3339 times; --since keeps only recent lines', async () => {
    await waitFor('a few lines', async () => (await runCli(['logs', 'box'], { stateDir })).stdout.split('\n').length > 5);
    const ts = await runCli(['logs', 'box', '--tail', '2', '--timestamps'], { stateDir });
    const lines = ts.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d line \d+$/);
    const all = (await runCli(['logs', 'box'], { stateDir })).stdout.trim().split('\n');
    const recent = (await runCli(['logs', 'box', '--since', '1s'], { stateDir })).stdout.trim().split('\n');
    assert.ok(recent.length >= 1 && recent.length < all.length, `${recent.length} of ${all.length}`);
    const future = await runCli(['logs', 'box', '--since', new Date(Date.now() + 3_600_000).toISOString()], { stateDir });
    assert.equal(future.stdout, '');
    const bad = await runCli(['logs', 'box', '--since', 'yesterday'], { stateDir });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--since: 'yesterday'/);
  });

  it('logs -f shows new lines as they are written and ends when the container is destroyed', async () => {
    const child = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'logs', '-f', '--tail', '1', 'box'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...NODE_IDS_BY_DEFAULT, ...process.env },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const first = Number((await waitFor('the first line', () => /line (\d+)\n/.exec(out)))[1]);
    await waitFor('three more lines', () => out.trim().split('\n').length >= 4);
    const nums = out
      .trim()
      .split('\n')
      .map((l) => Number(/line (\d+)/.exec(l)?.[1]));
    nums.slice(0, 4).forEach((n, i) => assert.equal(n, first + i, 'consecutive lines, none lost or repeated'));
    await rm(path.join(dir, 'box.yaml'));
    await writeFile(path.join(dir, 'off.yaml'), manifest('off', { state: 'Stopped' }));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 5000))]), 0);
  });
});

describe('container log size limit (conmon --log-size-max)', function () {
  this.timeout(60_000);

  it("keeps the log under its limit, and a follower reads on across conmon's replacement of the file", async () => {
    const st = await tmpState();
    try {
      const rt = new RuncRuntime({ stateDir: st.dir, templates: st.templates, logSizeMax: 8192 });
      await rt.create({
        namespace: 'default',
        name: 'chatty',
        spec: testSpec({
          command: ['sh', '-c'],
          args: [
            'echo start; while [ ! -e /tmp/go ]; do sleep 0.05; done; i=0; while [ $i -lt 2000 ]; do echo "line $i ......................................"; i=$((i+1)); [ $((i % 50)) -eq 0 ] && sleep 0.05; done; sleep 100000',
          ],
        }),
        source: FILE_SOURCE,
      });
      let out = '';
      const follow = rt.followLogs(
        'default/chatty',
        (t) => {
          out += t.toString();
        },
        { pollIntervalMs: 20 },
      );
      const { pid } = await rt.start('default/chatty');
      // The follower is on the log (it printed the first line) before the lines come.
      await waitFor('the first line followed', () => out === 'start\n', { timeoutMs: 20_000 });
      await writeFile(`/proc/${pid}/root/tmp/go`, '');
      await waitFor('the last line followed', () => out.includes('line 1999 '), { timeoutMs: 20_000 });
      const log = path.join(st.dir, 'containers', 'default_chatty', 'container.log');
      assert.ok((await stat(log)).size <= 8192, `log is ${(await stat(log)).size} bytes`);
      assert.ok(!(await readFile(log, 'utf8')).includes('line 0 '), 'the oldest lines were dropped from the file');
      const followed = out.split('\n').filter(Boolean).slice(1);
      // Every rotated file is read to its end before the next: all lines, in order, once.
      assert.deepEqual(
        followed.map((l) => Number(/^line (\d+) /.exec(l)?.[1])),
        Array.from({ length: 2000 }, (_, i) => i),
      );
      await rt.remove('default/chatty', { keepPrivateArea: false });
      await follow;
    } finally {
      await st.cleanupAndAssertNoLeaks();
    }
  });
});
