/**
 * The run dir: what describes processes (runc root, bundles, conmon's pid, sync and exit files)
 * lives apart from the state dir, as it does under /run for runc, podman and CRI-O. A reboot
 * empties it; the state dir (records, private areas, logs) is what survives.
 */
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { unmountAll } from '../../src/util/mounts.js';
import path from 'node:path';
import { RuntimeUnavailableError } from '../../src/runtime/runtime.js';
import type { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { pollUntil } from '../../src/util/poll.js';
import { readPid } from '../../src/runtime/runc/conmon.js';
import { containerPaths } from '../../src/runtime/runc/paths.js';
import { isAlive } from '../../src/util/processes.js';
import { exists } from '../../src/util/exists.js';
import { runCli } from '../support/cli.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeRuntime, makeTmpStateDir, tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { flatContainers } from '../support/get.js';

const sleeper = (name: string) => ({ namespace: 'default', name, spec: testSpec({ command: ['sleep', '100000'] }), source: FILE_SOURCE });

async function killAndWait(pid: number | undefined): Promise<void> {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await pollUntil(async () => !(await isAlive(pid)), { timeoutMs: 10_000, intervalMs: 10 });
}

describe('RuncRuntime: the run dir (real runc)', function () {
  this.timeout(60_000);
  let runDir: string;
  let st: TmpState;
  beforeEach(async () => {
    runDir = await mkdtemp('/tmp/acetate-run-');
    st = await tmpState(undefined, { runDir });
  });
  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
    assert.equal(await exists(runDir), false, 'cleanup removes the run dir too');
  });

  it('runc state, the bundle and conmon files are in the run dir; records, private area and log in the state dir', async () => {
    await st.runtime.create(sleeper('a'));
    const { pid } = await st.runtime.start('default/a');
    const cp = containerPaths(st.runtime.paths, 'default_a');
    assert.equal(await exists(path.join(runDir, 'runc', 'default_a', 'state.json')), true, 'runc state in the run dir');
    assert.equal(await exists(path.join(runDir, 'containers', 'default_a', 'bundle', 'config.json')), true, 'bundle in the run dir');
    assert.equal(await readPid(path.join(runDir, 'containers', 'default_a', 'pid')), pid);
    const conmon = await readPid(path.join(runDir, 'containers', 'default_a', 'conmon.pid'));
    assert.ok(conmon && (await isAlive(conmon)), 'conmon runs, its pid file in the run dir');
    assert.match((await readFile(`/proc/${conmon}/cmdline`, 'utf8')).split('\0').join(' '), new RegExp(`--bundle ${runDir}/containers/default_a/bundle`));
    const top = await readdir(st.dir);
    for (const d of ['runc', 'sockets', 'run']) assert.ok(!top.includes(d), `no ${d} in the state dir (${top.join(', ')})`);
    // host-view.json and machine-id: what the host template placed in the private area, and the container's id;
    // host-view-target.json: where its markers go, for `acetate run`'s live updates (host-view-watch.ts).
    assert.deepEqual((await readdir(cp.dir)).sort(), [
      'container.log',
      'host-view-target.json',
      'host-view.json',
      'machine-id',
      'record.json',
      'rootfs',
      'status.json',
      'upper',
      'work',
    ]);
    assert.equal((await st.runtime.get('default/a'))?.process.pid, pid);

    await st.runtime.remove('default/a', { keepPrivateArea: false });
    assert.deepEqual(await readdir(path.join(runDir, 'containers')), [], "the container's run files leave with it");
    assert.deepEqual(await readdir(path.join(runDir, 'runc')), []);
  });

  it('after a reboot (processes gone, run dir emptied) the container starts again from its record, private area kept', async () => {
    await st.runtime.create(sleeper('b'));
    const first = await st.runtime.start('default/b');
    const cp = containerPaths(st.runtime.paths, 'default_b');
    await writeFile(path.join(cp.upper, 'kept'), 'from the previous boot\n');
    // The reboot: every process ends, /run starts empty.
    await killAndWait(await readPid(cp.conmonPidFile));
    await killAndWait(first.pid);
    await unmountAll(layersDirOf(runDir, st.runtime.paths.stateDir)); // the host view's layers' tmpfs (host-layer.ts)
    await rm(runDir, { recursive: true, force: true });

    const seen = await st.runtime.get('default/b');
    assert.ok(seen, 'the container is still known: its record is in the state dir');
    assert.notEqual(seen.process.state, 'running');
    const again = await st.runtime.start('default/b');
    assert.notEqual(again.pid, first.pid);
    assert.ok(await isAlive(again.pid));
    assert.equal(await readFile(`/proc/${again.pid}/root/kept`, 'utf8'), 'from the previous boot\n', 'its private area is back under its /');
    assert.equal((await st.runtime.get('default/b'))?.process.state, 'running');
  });
});

describe('RuncRuntime: the earlier layout (run files in the state dir) (real runc)', function () {
  this.timeout(60_000);
  let stateDir: string;
  afterEach(async () => {
    await cleanupStateDir(stateDir, { runDir: stateDir });
  });

  /** A fresh state dir in the earlier layout (`--run-dir <stateDir>`) with `name` running. */
  async function earlierLayoutWith(name: string): Promise<{ rt: RuncRuntime; pid: number }> {
    stateDir = await makeTmpStateDir();
    const rt = makeRuntime(stateDir, { runDir: stateDir });
    await rt.create(sleeper(name));
    return { rt, pid: (await rt.start(`default/${name}`)).pid };
  }

  it('--run-dir <stateDir> keeps the earlier layout working, and a kept private area survives removal', async () => {
    const { rt, pid } = await earlierLayoutWith('c');
    const cp = containerPaths(rt.paths, 'default_c');
    assert.equal(cp.runDir, cp.dir);
    assert.equal(await exists(path.join(stateDir, 'runc', 'default_c', 'state.json')), true);
    assert.equal(await exists(path.join(cp.dir, 'bundle', 'config.json')), true);
    await writeFile(path.join(cp.upper, 'data'), 'keep\n');
    await rt.remove('default/c', { keepPrivateArea: true });
    assert.equal(await isAlive(pid), false);
    assert.equal(await readFile(path.join(cp.upper, 'data'), 'utf8'), 'keep\n', 'the private area is kept');
    // The machine id and the record of the host template's markers stay with the private area.
    assert.deepEqual((await readdir(cp.dir)).sort(), ['host-view-target.json', 'host-view.json', 'machine-id', 'upper', 'work']);
    await rt.create(sleeper('c'));
    const again = await rt.start('default/c');
    assert.equal(await readFile(`/proc/${again.pid}/root/data`, 'utf8'), 'keep\n');
    await rt.remove('default/c', { keepPrivateArea: false });
    await assertNoLeaks(stateDir, { runDir: stateDir });
  });

  it('refuses to work over runc state an earlier acetate left in the state dir, and says what to do', async () => {
    // An earlier acetate (the earlier layout) left a running container.
    const { rt: earlier, pid } = await earlierLayoutWith('old');
    const rt = makeRuntime(stateDir);
    const refused = (err: unknown): boolean => {
      assert.ok(err instanceof RuntimeUnavailableError);
      assert.match(err.message, new RegExp(`${stateDir}/runc holds the runc state of 1 container`));
      assert.match(err.message, new RegExp(`--run-dir ${stateDir}`));
      return true;
    };
    await assert.rejects(rt.preflight(), refused);
    await assert.rejects(rt.list(), refused, 'it would see the container as not running');
    await assert.rejects(rt.start('default/old'), refused, 'and start it a second time');
    const r = await runCli(['get'], { stateDir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--run-dir/);
    assert.ok(await isAlive(pid), 'the running container is left alone');
    assert.equal((await earlier.get('default/old'))?.process.pid, pid);
    await earlier.remove('default/old', { keepPrivateArea: false });
  });
});

describe('acetate --run-dir (CLI, real runc)', function () {
  this.timeout(60_000);
  let root: string;
  afterEach(async () => {
    await cleanupStateDir(path.join(root, 'state'), { runDir: path.join(root, 'run') });
    await rm(root, { recursive: true, force: true });
  });

  it('puts the runc root in the given run dir, nothing of it in the state dir', async () => {
    root = await mkdtemp('/tmp/acetate-rundir-cli-');
    const stateDir = path.join(root, 'state');
    const runDir = path.join(root, 'run');
    await mkdir(path.join(root, 'm'));
    await writeFile(
      path.join(root, 'm', 'c.yaml'),
      'apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata: { name: d }\nspec:\n  template: host\n  command: ["sleep", "100000"]\n  terminationGracePeriodSeconds: 0\n',
    );
    const r = await runCli(['--run-dir', runDir, 'apply', '-f', path.join(root, 'm')], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exists(path.join(runDir, 'runc', 'default_d', 'state.json')), true);
    assert.equal(await exists(path.join(stateDir, 'run')), false);
    const got = await runCli(['get', '-o', 'json', '--run-dir', runDir], { stateDir });
    assert.equal(flatContainers(got.stdout)[0]?.phase, 'Running');
    const missing = await runCli(['--run-dir'], { stateDir });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--run-dir needs a directory/);
    await rm(path.join(root, 'm', 'c.yaml'));
    assert.equal((await runCli(['--run-dir', runDir, 'apply', '-f', path.join(root, 'm'), '--allow-empty'], { stateDir })).code, 0);
    await assertNoLeaks(stateDir, { runDir });
  });
});
