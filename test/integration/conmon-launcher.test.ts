/**
 * The conmon launcher (native/acetate-launch.c, src/runtime/runc/conmon-launcher.ts): what it
 * starts is born in the cgroup the launcher was placed in (no move per container), with only what
 * it is given (environment, fds 0-3, cwd /, a session of its own); a program that cannot run, a
 * launcher that dies and an idle launcher are each checked on real processes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConmonLauncher, LauncherError } from '../../src/runtime/runc/conmon-launcher.js';
import { joinCgroups } from '../../src/runtime/runc/conmon-cgroup.js';
import { isAlive } from '../../src/util/processes.js';

/** A tracking hierarchy of this node (name=systemd on v1/hybrid, the unified one on v2). */
const HIERARCHY = '/sys/fs/cgroup/systemd';

function cgroupOf(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/cgroup`, 'utf8').then(
    (t) =>
      t
        .split('\n')
        .find((l) => l.includes(':name=systemd:'))
        ?.split(':')[2] ?? '',
  );
}

describe('conmon launcher: programs born where it was placed', function () {
  let tmp: string;
  let cg: string;
  let launcher: ConmonLauncher;
  const placed: number[] = [];
  const strays: number[] = [];

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'acetate-launch-'));
    cg = path.join(HIERARCHY, `acetate-test-launch-${process.pid}`);
    await mkdir(cg, { recursive: true });
    placed.length = 0;
    launcher = new ConmonLauncher({
      place: async (pid) => {
        placed.push(pid);
        await joinCgroups(pid, [cg]);
      },
    });
  });

  afterEach(async () => {
    await launcher.stop();
    for (const pid of strays.splice(0)) if (await isAlive(pid)) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50; i++) {
      if (
        await rmdir(cg).then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await rm(tmp, { recursive: true, force: true });
  });

  it("starts the program in the launcher's cgroup with only the given environment, fds 0-3 (3: the sync file), cwd / and its own session", async () => {
    const out = path.join(tmp, 'out');
    const sync = path.join(tmp, 'sync');
    const script =
      'grep name=systemd /proc/$$/cgroup; echo "env:$(env | sort | tr "\\n" " ")"; echo "cwd:$(pwd)"; echo "sid:$(cut -d" " -f6 /proc/$$/stat) pid:$$"; echo reported >&3; exit 3';
    const end = await launcher.launch({ program: '/bin/sh', args: ['-c', script], env: { PATH: '/usr/bin:/bin', FOO: 'bar baz' }, out, fd3: sync });
    assert.deepEqual(end, { code: 3 });
    const text = await readFile(out, 'utf8');
    assert.match(text, new RegExp(`:name=systemd:/acetate-test-launch-${process.pid}\n`), text);
    assert.match(text, /^env:FOO=bar baz PATH=\/usr\/bin:\/bin PWD=\/ $/m, text);
    assert.match(text, /^cwd:\/$/m);
    const [, sid, shell] = /sid:(\d+) pid:(\d+)/.exec(text)!;
    assert.equal(sid, shell, 'a session of its own');
    assert.equal(await readFile(sync, 'utf8'), 'reported\n');
    // Placed once: its second program is born there as well, with no second move. Its fds, seen
    // from outside while it runs (a listing from inside would show the listing's own): 0-3 only.
    await writeFile(sync, '');
    const second = launcher.launch({ program: '/bin/sh', args: ['-c', 'echo $$ >&3; exec sleep 30'], env: {}, out, fd3: sync });
    let pid = 0;
    for (let i = 0; i < 100 && !(pid = Number((await readFile(sync, 'utf8')).split('\n')[0])); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await cgroupOf(pid), `/acetate-test-launch-${process.pid}`);
    assert.deepEqual((await readdir(`/proc/${pid}/fd`)).sort(), ['0', '1', '2', '3']);
    assert.equal(await readlink(`/proc/${pid}/fd/0`), '/dev/null');
    process.kill(pid, 'SIGTERM');
    assert.deepEqual(await second, { signal: 15 });
    assert.equal(placed.length, 1);
    assert.equal(await cgroupOf(launcher.pid!), `/acetate-test-launch-${process.pid}`);
  });

  it('a program that cannot be run: exit 127, and why in its output file', async () => {
    const out = path.join(tmp, 'out');
    const end = await launcher.launch({ program: path.join(tmp, 'missing'), args: [], env: {}, out, fd3: path.join(tmp, 'sync') });
    assert.deepEqual(end, { code: 127 });
    assert.match(await readFile(out, 'utf8'), /cannot run .*missing: No such file or directory/);
  });

  it('the launcher killed: the launch waiting on it fails with the reason; the next launch starts and places a new one', async () => {
    const pidFile = path.join(tmp, 'pid');
    const waiting = launcher.launch({
      program: '/bin/sh',
      args: ['-c', `echo $$ > ${pidFile}; exec sleep 30`],
      env: {},
      out: path.join(tmp, 'out'),
      fd3: path.join(tmp, 'sync'),
    });
    for (let i = 0; i < 100 && !(await readFile(pidFile, 'utf8').catch(() => '')); i++) await new Promise((r) => setTimeout(r, 20));
    strays.push(Number(await readFile(pidFile, 'utf8')));
    const first = launcher.pid!;
    process.kill(first, 'SIGKILL');
    await assert.rejects(waiting, (err: Error) => err instanceof LauncherError && /exited \(SIGKILL\)/.test(err.message));
    assert.deepEqual(await launcher.launch({ program: '/bin/true', args: [], env: {}, out: path.join(tmp, 'out'), fd3: path.join(tmp, 'sync') }), { code: 0 });
    assert.notEqual(launcher.pid, first);
    assert.deepEqual(placed, [first, launcher.pid]);
  });

  it('stop(): the launcher leaves, so its emptied cgroup can be removed', async () => {
    await launcher.launch({ program: '/bin/true', args: [], env: {}, out: path.join(tmp, 'out'), fd3: path.join(tmp, 'sync') });
    const pid = launcher.pid!;
    await assert.rejects(rmdir(cg), /EBUSY/);
    await launcher.stop();
    assert.equal(launcher.pid, undefined);
    assert.equal(await isAlive(pid), false);
    await rmdir(cg);
    await mkdir(cg); // for afterEach
  });

  it('an idle launcher does not keep acetate running: a process that launched once exits by itself', async () => {
    const module = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/runtime/runc/conmon-launcher.js');
    const code = `import(${JSON.stringify(module)}).then(async (m) => {
      const l = new m.ConmonLauncher({ place: async () => {} });
      const end = await l.launch({ program: '/bin/true', args: [], env: {}, out: ${JSON.stringify(path.join(tmp, 'out'))}, fd3: ${JSON.stringify(path.join(tmp, 'sync'))} });
      console.log(JSON.stringify({ end, launcher: l.pid }));
    })`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [exitCode] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(exitCode, 0, 'the node process ended by itself');
    const { end, launcher: pid } = JSON.parse(stdout) as { end: unknown; launcher: number };
    assert.deepEqual(end, { code: 0 });
    // Its stdin closed with the process: the launcher is gone too.
    for (let i = 0; i < 100 && (await isAlive(pid)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await isAlive(pid), false);
  });
});
