/**
 * The conmon launcher (native/acetate-launch.c, src/runtime/runc/conmon-launcher.ts): what it
 * starts is born in the cgroup the launcher was placed in (no move per container), with only what
 * it is given (environment, fds 0-3, cwd /, a session of its own, no blocked or ignored signal);
 * a program that cannot run, a launcher that dies or ends, a stop racing a launch and an idle
 * launcher are each checked on real processes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConmonLauncher, LAUNCH_HELPER, LauncherError, type LaunchRequest } from '../../src/runtime/runc/conmon-launcher.js';
import { joinCgroups, trackingHierarchies } from '../../src/runtime/runc/conmon-cgroup.js';
import { findProcessesByCmdline, isAlive } from '../../src/util/processes.js';
import { exists } from '../../src/util/exists.js';
import { tmpState, tmpStateForSuite, type TmpState } from '../support/tmp-state.js';
import { createTestContainer } from '../support/test-spec.js';
import { runNodeScript, srcModule } from '../support/node-script.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('conmon launcher: programs born where it was placed', function () {
  let tmp: string;
  let hierarchy: string;
  let cg: string;
  let launcher: ConmonLauncher;
  const placed: number[] = [];
  const strays: number[] = [];
  const name = `acetate-test-launch-${process.pid}`;
  const req = (program: string, args: string[] = [], more: Partial<LaunchRequest> = {}): LaunchRequest => ({
    program,
    args,
    env: {},
    out: path.join(tmp, 'out'),
    fd3: path.join(tmp, 'sync'),
    ...more,
  });

  /** The cgroup of `pid` in the hierarchy the launcher was placed in. */
  async function cgroupOf(pid: number): Promise<string> {
    const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
    const line = path.basename(hierarchy) === 'systemd' ? lines.find((l) => l.includes(':name=systemd:')) : lines.find((l) => l.startsWith('0::'));
    return line?.split(':')[2] ?? '';
  }

  /** Runs `sh -c 'echo $$ >&3; exec sleep 30'` and returns the launch and the sleep's pid. */
  async function sleeper(l: ConmonLauncher): Promise<{ ended: Promise<unknown>; pid: number }> {
    const sync = path.join(tmp, `sync-${strays.length}`);
    await writeFile(sync, '');
    const ended = l.launch(req('/bin/sh', ['-c', 'echo $$ >&3; exec sleep 30'], { fd3: sync }));
    ended.catch(() => undefined);
    let pid = 0;
    for (let i = 0; i < 200 && !(pid = Number((await readFile(sync, 'utf8')).split('\n')[0])); i++) await sleep(10);
    strays.push(pid);
    return { ended, pid };
  }

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'acetate-launch-'));
    [hierarchy] = await trackingHierarchies();
    assert.ok(hierarchy, 'no hierarchy systemd tracks processes by on this node');
    cg = path.join(hierarchy, name);
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
    for (const pid of strays.splice(0)) if (await isAlive(pid)) process.kill(pid, 'SIGKILL');
    await launcher.stop();
    for (
      let i = 0;
      i < 50 &&
      !(await rmdir(cg).then(
        () => true,
        (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
      ));
      i++
    )
      await sleep(20);
    await rm(tmp, { recursive: true, force: true });
  });

  it('starts the program in its cgroup with only the given environment, fds 0-3 (3: the sync file), cwd /, its own session, no signal blocked or ignored', async () => {
    const script = 'echo "env:$(env | sort | tr "\\n" " ")"; echo "cwd:$(pwd)"; echo "sid:$(cut -d" " -f6 /proc/$$/stat) pid:$$"; echo reported >&3; exit 3';
    const sync = path.join(tmp, 'sync');
    assert.deepEqual(await launcher.launch(req('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin', FOO: 'bar baz' } })), { code: 3 });
    const text = await readFile(path.join(tmp, 'out'), 'utf8');
    assert.match(text, /^env:FOO=bar baz PATH=\/usr\/bin:\/bin PWD=\/ $/m, text);
    assert.match(text, /^cwd:\/$/m);
    const [, sid, shell] = /sid:(\d+) pid:(\d+)/.exec(text)!;
    assert.equal(sid, shell, 'a session of its own');
    assert.equal(await readFile(sync, 'utf8'), 'reported\n');
    // A second program, seen from outside while it runs (a listing from inside would show its own fd).
    const { ended, pid } = await sleeper(launcher);
    assert.equal(await cgroupOf(pid), `/${name}`);
    assert.deepEqual((await readdir(`/proc/${pid}/fd`)).sort(), ['0', '1', '2', '3']);
    assert.equal(await readlink(`/proc/${pid}/fd/0`), '/dev/null');
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^SigBlk:\s+0+$/m, 'the launcher blocks SIGCHLD: its programs must not');
    assert.match(status, /^SigIgn:\s+0+$/m, 'the launcher ignores SIGPIPE: its programs must not');
    process.kill(pid, 'SIGTERM');
    assert.deepEqual(await ended, { signal: 15 });
    assert.equal(placed.length, 1, 'placed once, for both');
    assert.equal(await cgroupOf(launcher.pid!), `/${name}`);
  });

  it('a program that cannot be run, or an output file that cannot be opened: the launch fails with why', async () => {
    await assert.rejects(
      launcher.launch(req(path.join(tmp, 'missing'))),
      (e: Error) => e instanceof LauncherError && /cannot run \S*missing: No such file or directory/.test(e.message),
    );
    await assert.rejects(
      launcher.launch(req('/bin/true', [], { out: path.join(tmp, 'no-dir', 'out') })),
      /cannot open \S*no-dir\/out: No such file or directory/,
    );
    assert.deepEqual(await launcher.launch(req('/bin/true')), { code: 0 }, 'the launcher goes on');
  });

  it('the launcher killed: the launch waiting on it fails with the reason; the next launch starts and places a new one', async () => {
    const { ended } = await sleeper(launcher);
    const first = launcher.pid!;
    process.kill(first, 'SIGKILL');
    await assert.rejects(ended, (err: Error) => err instanceof LauncherError && /exited \(SIGKILL\)/.test(err.message));
    assert.deepEqual(await launcher.launch(req('/bin/true')), { code: 0 });
    assert.notEqual(launcher.pid, first);
    assert.deepEqual(placed, [first, launcher.pid]);
  });

  it('a stopped launcher: the launch fails after its time limit, the launcher is killed, the next launch starts a new one', async () => {
    assert.deepEqual(await launcher.launch(req('/bin/true')), { code: 0 });
    const stuck = launcher.pid!;
    process.kill(stuck, 'SIGSTOP');
    await assert.rejects(launcher.launch(req('/bin/true'), 300), /gave no answer within 300 ms: killed/);
    for (let i = 0; i < 100 && (await isAlive(stuck)); i++) await sleep(20);
    assert.equal(await isAlive(stuck), false, 'the stopped launcher is gone');
    assert.deepEqual(await launcher.launch(req('/bin/true')), { code: 0 });
    assert.notEqual(launcher.pid, stuck);
  });

  it('stop(): a launch in flight is still answered, one begun meanwhile gets a new launcher, and the emptied cgroup can be removed', async () => {
    const inFlight = launcher.launch(req('/bin/sh', ['-c', 'sleep 0.3; exit 5']));
    await sleep(50);
    const first = launcher.pid!;
    const stopped = launcher.stop();
    const during = launcher.launch(req('/bin/true'));
    assert.deepEqual(await inFlight, { code: 5 });
    assert.deepEqual(await during, { code: 0 });
    await stopped;
    assert.equal(await isAlive(first), false);
    assert.notEqual(launcher.pid, first);
    await assert.rejects(rmdir(cg), /EBUSY/, 'the new launcher is in it');
    await launcher.stop();
    assert.equal(launcher.pid, undefined);
    await rmdir(cg);
  });

  it('a launcher that dies while it is placed is not used: the launch fails instead of waiting forever', async () => {
    const dying = new ConmonLauncher({ helper: '/bin/true', place: async () => void (await sleep(100)) });
    await assert.rejects(dying.launch(req('/bin/true')), /cannot place the conmon launcher: it exited \(0\)/);
  });

  it('an idle launcher does not keep acetate running: a process that launched once exits by itself, and its launcher with it', async () => {
    const code = `import(${JSON.stringify(srcModule('runtime/runc/conmon-launcher.js'))}).then(async (m) => {
      const l = new m.ConmonLauncher({ place: async () => {} });
      const end = await l.launch(${JSON.stringify(req('/bin/true'))});
      console.log(JSON.stringify({ end, launcher: l.pid }));
    })`;
    const { exitCode, stdout } = await runNodeScript(code);
    assert.equal(exitCode, 0, 'the node process ended by itself');
    const { end, launcher: pid } = JSON.parse(stdout) as { end: unknown; launcher: number };
    assert.deepEqual(end, { code: 0 });
    for (let i = 0; i < 100 && (await isAlive(pid)); i++) await sleep(20);
    assert.equal(await isAlive(pid), false);
  });
});

describe('conmon launcher: a start whose launcher dies leaves nothing behind', function () {
  this.timeout(60_000);
  let st: TmpState;
  let wrapper: string;

  before(async () => {
    // A conmon that first kills the launcher that forked it, then goes on as conmon: acetate hears
    // only that the launcher died, while this conmon would create the container behind its back.
    wrapper = path.join(await mkdtemp(path.join(os.tmpdir(), 'acetate-conmon-wrapper-')), 'conmon-killing-its-launcher');
    await writeFile(wrapper, '#!/bin/sh\nkill -KILL $PPID\nexec conmon "$@"\n', { mode: 0o755 });
    st = await tmpState(undefined, { conmonPath: wrapper });
  });
  after(async () => {
    await st.cleanupAndAssertNoLeaks();
    await rm(path.dirname(wrapper), { recursive: true, force: true });
  });

  it('the start fails naming the launcher; no conmon, runc state or cgroup of the container is left, even a moment later; the next start runs it', async () => {
    await createTestContainer(st.runtime, 'orphaned', { command: ['sleep'], args: ['1000'] });
    await assert.rejects(st.runtime.start('default/orphaned'), /the conmon launcher exited \(SIGKILL\)/);
    // Long enough for a surviving conmon to have created the container (a create takes ~50 ms).
    await sleep(1_500);
    const bundle = path.join(st.runtime.paths.runDir, 'containers', 'default_orphaned', 'bundle');
    assert.deepEqual(await findProcessesByCmdline(bundle), [], 'no conmon or runc of it');
    assert.equal(await exists(path.join(st.runtime.paths.runcRoot, 'default_orphaned')), false, 'no runc state');
    const [hierarchy] = await trackingHierarchies();
    assert.equal(await exists(path.join(path.dirname(hierarchy!), 'pids', st.runtime.paths.cgroupParent, 'default_orphaned')), false, 'no cgroup');
    await writeFile(wrapper, '#!/bin/sh\nexec conmon "$@"\n');
    const { pid } = await st.runtime.start('default/orphaned');
    assert.ok(await isAlive(pid));
  });
});

describe("conmon launcher: churn of an instance's last container", function () {
  this.timeout(120_000);
  let st: TmpState;
  tmpStateForSuite((s) => (st = s), { preflight: true });

  it('starts racing the removal of the last other container all succeed; once all are gone, no launcher and no cgroup of the instance are left', async () => {
    const [hierarchy] = await trackingHierarchies();
    const conmonCgroup = path.join(hierarchy!, st.runtime.paths.cgroupParent, 'conmon');
    const launchers = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const old = `churn-${round}`;
      const next = `churn-${round + 1}`;
      if (round === 0) {
        await createTestContainer(st.runtime, old, { command: ['sleep'], args: ['1000'] });
        await st.runtime.start(`default/${old}`);
      }
      await createTestContainer(st.runtime, next, { command: ['sleep'], args: ['1000'] });
      // The removal of the only running container stops the launcher (nothing else in its cgroup)
      // while the next start asks it for a conmon: the start gets a launcher, old or new.
      const [, started] = await Promise.all([
        st.runtime.remove(`default/${old}`, { keepPrivateArea: false }),
        // Each round a little later: the start's launch meets the stop at another point of it.
        sleep(round * 10).then(() => st.runtime.start(`default/${next}`)),
      ]);
      assert.ok(await isAlive(started.pid), `round ${round}: ${next} runs`);
      const procs = (await readFile(path.join(conmonCgroup, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
      assert.ok(procs.length >= 1, `round ${round}: its conmon is in the conmons' cgroup`);
      // This instance's launchers (other test files run theirs beside this one).
      for (const pid of procs) if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).startsWith(LAUNCH_HELPER)) launchers.add(pid);
    }
    assert.ok(launchers.size >= 1, "a launcher was seen in the conmons' cgroup");
    await st.runtime.remove('default/churn-10', { keepPrivateArea: false });
    for (const h of await trackingHierarchies()) assert.equal(await exists(path.join(h, st.runtime.paths.cgroupParent)), false, `no cgroup left in ${h}`);
    for (const pid of launchers) assert.equal(await isAlive(pid), false, `launcher ${pid} left`);
  });
});
