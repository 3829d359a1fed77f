/**
 * `acetate get` and `acetate plan` beside a running `acetate run` answer from the loop's view of
 * its containers (controller/observed.ts, served on <runDir>/loop.sock), not by reading every
 * container's files again; `--direct` reads the node. What a user checks: the two agree on what
 * the loop knows, an exit or an edit shows at once, a change made by hand behind acetate's back
 * (`runc update`) shows with --direct and, in the view, once the loop reads the container again;
 * a killed loop's socket is passed by, a new loop serves again, and a stopped one leaves no socket.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { lstat, mkdir, readFile, writeFile, rm, symlink } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { CLI, NODE_IDS_BY_DEFAULT, runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { imageManifest, manifest } from '../support/manifest.js';
import { flatContainers, type FlatContainer } from '../support/get.js';
import { defaultRunDirOf, instancePaths } from '../../src/runtime/runc/paths.js';
import { findBinary } from '../../src/util/find-binary.js';
import { exec } from '../../src/util/exec.js';

const MI = 2 ** 20;

describe("get and plan beside acetate run: the loop's view (real runc)", function () {
  this.timeout(180_000);
  let dirs: CliDirs;
  let stateDir: string;
  let dir: string;
  let socket: string;
  let acetate: CliProcess | undefined;

  /** A loop whose resync does not come during the test: what it shows is what its events made it read. */
  const startLoop = async (): Promise<CliProcess> => {
    // A failed reconcile's retry a minute away: a key waiting it out is read again only on news of it.
    const a = (acetate = new CliProcess(['run', '-f', dir, ...quickRunFlags({ resync: '30m' }), '--log-format', 'json'], {
      stateDir,
      env: { ACETATE_BACKOFF_BASE_MS: '60000' },
    }));
    await waitFor(() => a.logged(/^ready: first sync done$/) || !a.running(), { timeoutMs: 60_000, message: 'loop ready' });
    assert.ok(a.running(), a.stderr);
    return a;
  };
  const get = async (...flags: string[]): Promise<Map<string, FlatContainer>> => {
    const r = await runCli(['get', '-o', 'json', ...flags], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    return new Map(flatContainers(r.stdout).map((c) => [c.name, c]));
  };
  /** The table's rows, cell by cell, but AGE and DISK (read at each call: they may turn between two). */
  const tableRows = async (...flags: string[]): Promise<string[][]> => {
    const r = await runCli(['get', ...flags], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n');
    assert.equal(rows.length, 4, r.stdout);
    const disk = rows[0]!.split(/ {3,}/).indexOf('DISK');
    return rows.map((l) => l.split(/ {3,}/).filter((_, i) => i !== 6 && i !== disk));
  };
  /** The MEMORY column (desired/actual) of NAME in the table. */
  const memoryColumn = async (name: string, ...flags: string[]): Promise<string> => {
    const r = await runCli(['get', name, ...flags], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    const row = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(row, r.stdout);
    return row.split(/\s+/)[4]!;
  };
  /** How many `plan -f DIR` asks the loop answered so (its acetate_plans_for_askers_total). */
  const plans = async (answer: string): Promise<number> =>
    Number(
      new RegExp(`^acetate_plans_for_askers_total\\{answer="${answer}"\\} (\\d+)`, 'm').exec(await (await fetch(`${acetate!.url}/metrics`)).text())?.[1] ?? 0,
    );
  const runcUpdateMemory = async (name: string, bytes: number): Promise<void> => {
    const runc = await findBinary('runc');
    assert.ok(runc);
    await exec(runc, ['--root', instancePaths(stateDir).runcRoot, 'update', '--memory', String(bytes), `default_${name}`]);
  };

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    socket = path.join(defaultRunDirOf(stateDir), 'loop.sock');
    await writeFile(path.join(dir, 'va.yaml'), manifest('va'));
    await writeFile(path.join(dir, 'vb.yaml'), manifest('vb'));
    await writeFile(path.join(dir, 'vd.yaml'), `${manifest('vd', { cpu: null, memory: null, pids: null })}  resources:\n    disk: 64Mi\n`);
    await startLoop();
  });
  after(async () => {
    await acetate?.stop();
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('answers get and plan as reading the node does, on a socket only root can use', async () => {
    const st = await lstat(socket);
    assert.ok(st.isSocket(), 'loop.sock is a socket');
    assert.equal(st.mode & 0o777, 0o600, 'root alone may connect');
    assert.equal(st.uid, 0);
    const view = await get();
    const direct = await get('--direct');
    assert.deepEqual([...view.keys()].sort(), ['va', 'vb', 'vd']);
    for (const [name, c] of direct) {
      const v = view.get(name)!;
      assert.equal(v.phase, 'Running');
      assert.deepEqual([v.phase, v.pid, v.restarts, v.actual, v.desired], [c.phase, c.pid, c.restarts, c.actual, c.desired], name);
      assert.deepEqual(
        v.conditions.map((x) => [x.type, x.status, x.reason]),
        c.conditions.map((x) => [x.type, x.status, x.reason]),
        `${name}: the same status records`,
      );
    }
    // A NAME not found is said, the others printed, and the exit code is 1 (as kubectl's).
    for (const flags of [[], ['--direct']]) {
      const r = await runCli(['get', 'va', 'nope', ...flags], { stateDir });
      assert.deepEqual([r.code, r.stderr.trim(), /^va /m.test(r.stdout)], [1, 'not found: default/nope', true], `${flags.join(' ')} ${r.stdout}`);
    }
    // The table's rows are the loop's (controller/container-rows.ts), made as from the files.
    for (const wide of [[], ['-o', 'wide']]) assert.deepEqual(await tableRows(...wide), await tableRows(...wide, '--direct'), `get ${wide.join(' ')}`);
    for (const flags of [[], ['--direct']]) {
      const p = await runCli(['plan', '-f', dir, ...flags], { stateDir });
      assert.equal(p.code, 0, `no changes ${flags.join(' ')}: ${p.stdout}${p.stderr}`);
    }
  });

  it('shows a limit changed by hand with --direct, and in the view once the loop reads the container again', async () => {
    await runcUpdateMemory('va', 48 * MI);
    assert.equal(await memoryColumn('va', '--direct'), '64Mi/48Mi', 'the cgroup, read now');
    assert.equal(await memoryColumn('va'), '64Mi/64Mi', 'what the loop last read (its resync is 30 min away)');
    // The plan of the view is the loop's: it has not seen the drift, so nothing to do; --direct sees it.
    assert.equal((await runCli(['plan', '-f', dir], { stateDir })).code, 0);
    const direct = await runCli(['plan', '-f', dir, '--direct'], { stateDir });
    assert.equal(direct.code, 2, direct.stdout);
    assert.match(direct.stdout, /resize\s+default\/va/);
    // An edit makes the loop read va again: the drift is repaired with the edit, and the view shows the result at once.
    await writeFile(path.join(dir, 'va.yaml'), manifest('va', { memory: '96Mi' }));
    await waitFor(async () => (await memoryColumn('va')) === '96Mi/96Mi', { timeoutMs: 30_000, message: 'the edit in the view' });
    assert.equal(await memoryColumn('va', '--direct'), '96Mi/96Mi');
  });

  it('shows a killed process restarted, with the new pid and the restart counted', async () => {
    const before = (await get()).get('vb')!;
    process.kill(before.pid!, 'SIGKILL');
    const after = await waitFor(
      async () => {
        const c = (await get()).get('vb');
        return c?.phase === 'Running' && c.pid !== before.pid ? c : undefined;
      },
      { timeoutMs: 60_000, message: 'vb restarted, in the view' },
    );
    assert.equal(after.restarts, before.restarts + 1);
    const direct = (await get('--direct')).get('vb')!;
    assert.deepEqual([direct.pid, direct.restarts], [after.pid, after.restarts]);
  });

  it('shows an exit at once though its key waits out a back-off (its last reconcile failed)', async () => {
    await writeFile(path.join(dir, 'vb.yaml'), manifest('vb').replace('template: host', 'template: nosuchtemplate'));
    await waitFor(async () => (await get()).get('vb')?.conditions.some((c) => c.type === 'Synced' && c.status === 'False'), {
      timeoutMs: 30_000,
      message: 'the replace failed, retried in a minute',
    });
    const before = (await get()).get('vb')!;
    assert.equal(before.phase, 'Running', 'the old container is kept');
    process.kill(before.pid!, 'SIGKILL');
    const t0 = Date.now();
    await waitFor(async () => (await get()).get('vb')?.phase !== 'Running', { timeoutMs: 15_000, message: 'the exit in the view' });
    assert.ok(Date.now() - t0 < 15_000);
    assert.notEqual((await get('--direct')).get('vb')?.phase, 'Running');
    // Put back: a change wakes the key at once (the back-off is for retries), and it runs again.
    await writeFile(path.join(dir, 'vb.yaml'), manifest('vb'));
    await waitFor(async () => (await get()).get('vb')?.phase === 'Running', { timeoutMs: 60_000, message: 'vb running again' });
  });

  it("shows a container's disk use as it is now, though the loop has not read the container since", async () => {
    const pid = (await get()).get('vd')!.pid!;
    const used = async (): Promise<number> => {
      const r = await runCli(['get', 'vd', '-o', 'wide'], { stateDir });
      assert.equal(r.code, 0, r.stderr);
      const [head, row] = r.stdout.split('\n');
      const cell = row!.split(/\s+/)[head!.split(/\s+/).indexOf('DISK')]!;
      return Number(/^([\d.]+)Mi\//.exec(cell)?.[1]);
    };
    const before = await used();
    await exec('nsenter', ['-t', String(pid), '-m', '--', 'sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=24 conv=fsync 2>/dev/null']);
    const after = await used();
    assert.ok(after >= before + 20, `DISK used ${before}Mi → ${after}Mi after 24 MiB written`);
  });

  it('plans `plan -f DIR` in the loop when DIR is its own: the plan --direct makes, of the files as they are now', async () => {
    const both = async (...flags: string[]) => {
      const before = await plans('planned');
      const byLoop = await runCli(['plan', '-f', dir, ...flags], { stateDir });
      assert.equal(await plans('planned'), before + 1, `planned by the loop: ${byLoop.stderr}`);
      const direct = await runCli(['plan', '-f', dir, '--direct', ...flags], { stateDir });
      assert.equal(await plans('planned'), before + 1, '--direct plans itself');
      assert.deepEqual([byLoop.code, byLoop.stdout, byLoop.stderr], [direct.code, direct.stdout, direct.stderr], flags.join(' '));
      return byLoop;
    };
    assert.equal((await both()).code, 0);
    // Saved a moment ago (no watcher has told the loop yet): a new container, whose create fails and
    // waits a minute (the loop's back-off), and a broken file, reported with its file, line and field.
    await writeFile(path.join(dir, 'vx.yaml'), manifest('vx').replace('template: host', 'template: nosuchtemplate'));
    await writeFile(path.join(dir, 'vy.yaml'), manifest('vy', { memory: 'lots' }));
    await writeFile(path.join(dir, 'notes.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\n'); // skipped with a warning
    const changed = await both();
    assert.equal(changed.code, 1, changed.stdout);
    assert.match(changed.stdout, /\+\s+create\s+default\/vx/);
    assert.match(changed.stderr, /^error: .*vy\.yaml:\d+: spec\.resources\.memory/m);
    assert.match(changed.stderr, /^warning: .*notes\.yaml/m);
    const json = await both('-o', 'json');
    assert.deepEqual(
      (JSON.parse(json.stdout) as { actions: { kind: string; key: string }[] }).actions.map((a) => `${a.kind} ${a.key}`),
      ['create default/vx'],
    );
    // Another directory (the same files by another name) is not the loop's: this process plans, the same plan.
    const declined = await plans('declined');
    await symlink(dir, `${dir}.link`);
    const other = await runCli(['plan', '-f', `${dir}.link`], { stateDir });
    await rm(`${dir}.link`);
    assert.equal(other.code, 1, other.stderr);
    assert.equal(other.stdout, changed.stdout);
    assert.equal(await plans('declined'), declined + 1, 'declined: another directory');
    await Promise.all(['vx.yaml', 'vy.yaml', 'notes.yaml'].map((f) => rm(path.join(dir, f))));
    assert.equal((await both()).code, 0, 'nothing to do again');
    // Under the same path, another mount namespace sees other files (here an empty tmpfs): the loop declines, `plan` plans itself.
    const inOtherNamespace = (...flags: string[]) => {
      const script = 'mount --make-rprivate / && mount -t tmpfs acetate-test "$1" && shift && exec "$@"';
      const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', dir, process.execPath, CLI, '--state-dir', stateDir, 'plan', '-f', dir, ...flags], {
        env: { ...NODE_IDS_BY_DEFAULT, ...process.env, ACETATE_ID_RECORDS: path.join(stateDir, 'node-id-ranges.json') },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return [r.status, r.stdout, r.stderr];
    };
    const declinedBefore = await plans('declined');
    const elsewhere = inOtherNamespace();
    assert.equal(await plans('declined'), declinedBefore + 1, 'declined: another mount namespace');
    assert.deepEqual(elsewhere, inOtherNamespace('--direct'));
    assert.match(String(elsewhere[1]), /not destroying: no manifest files in/, `the empty directory that namespace sees: ${elsewhere.join(' | ')}`);
    // Another network namespace sees other node addresses (the hostIPs a manifest names are checked against them): declined too.
    const env = { ...NODE_IDS_BY_DEFAULT, ...process.env, ACETATE_ID_RECORDS: path.join(stateDir, 'node-id-ranges.json') };
    const inOtherNetwork = (...flags: string[]) => {
      const r = spawnSync('unshare', ['-n', process.execPath, CLI, '--state-dir', stateDir, 'plan', '-f', dir, ...flags], {
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      return [r.status, r.stdout, r.stderr];
    };
    const declinedNet = await plans('declined');
    assert.deepEqual(inOtherNetwork(), inOtherNetwork('--direct'));
    assert.equal(await plans('declined'), declinedNet + 1, 'declined: another network namespace');
    // A file the loop knew valid breaks, and its container is declared again elsewhere: the loop
    // remembers what the file declared (it leaves va alone), `plan` reads the files as they are: the plan is plan's.
    const va = await readFile(path.join(dir, 'va.yaml'), 'utf8');
    await writeFile(path.join(dir, 'va.yaml'), 'apiVersion: [\n');
    await writeFile(path.join(dir, 'va-moved.yaml'), va.replace(/memory: \S+/, 'memory: 80Mi'));
    // Problems in the order `plan` walks the tree (app/ before app-x.yaml before app.yaml), a conflict named where it is first declared.
    await mkdir(path.join(dir, 'app'));
    await writeFile(path.join(dir, 'app', 'z.yaml'), manifest('vz', { memory: 'x' }));
    await writeFile(path.join(dir, 'app-x.yaml'), manifest('vq'));
    await writeFile(path.join(dir, 'app.yaml'), manifest('vq', { memory: 'y' }));
    await writeFile(path.join(dir, 'app', 'q.yaml'), manifest('vq'));
    const broken = await both();
    assert.equal(broken.code, 1, broken.stderr);
    assert.match(broken.stdout, /resize\s+default\/va/, 'planned from va-moved.yaml');
    await writeFile(path.join(dir, 'va.yaml'), va);
    await Promise.all(['va-moved.yaml', 'app-x.yaml', 'app.yaml', 'app'].map((f) => rm(path.join(dir, f), { recursive: true })));
    assert.equal((await both()).code, 0, 'nothing to do again');
  });

  it('shows a container that waits for its image when it is named, as reading the node does', async () => {
    // Port 1 of the loopback: nothing listens, the pull fails at once (ErrImagePull), retried in a minute.
    await writeFile(path.join(dir, 'vw.yaml'), imageManifest('vw', '127.0.0.1:1/none:1'));
    const row = async (...flags: string[]): Promise<string[]> => {
      const r = await runCli(['get', 'vw', 'va', ...flags], { stateDir });
      assert.equal(r.code, 0, r.stderr);
      return (
        r.stdout
          .split('\n')
          .find((l) => l.startsWith('vw '))
          ?.split(/ {3,}/) ?? []
      );
    };
    const waiting = await waitFor(
      async () => {
        const r = await row();
        return r[1] === 'Waiting' && r[7]?.startsWith('ErrImagePull: ') ? r : undefined; // after ImageResolving
      },
      { timeoutMs: 30_000, message: 'vw waits in ErrImagePull' },
    );
    assert.deepEqual(waiting, await row('--direct'));
    // -o wide: a cell under each of the 16 columns, the view's as the node's.
    const wide = async (...flags: string[]): Promise<string[]> => {
      const r = await runCli(['get', 'vw', '-o', 'wide', ...flags], { stateDir });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n')[1]!.split(/ {3,}/);
    };
    const wideRow = await wide();
    assert.equal(wideRow.length, 16, wideRow.join(' | '));
    assert.deepEqual(wideRow, await wide('--direct'));
    const plain = await runCli(['get'], { stateDir });
    assert.doesNotMatch(plain.stdout, /^vw /m, 'not on the node: shown only when named');
    // Its image's digest is resolved by the asker (registry rounds): the loop declines, `plan` plans itself.
    const declined = await plans('declined');
    const planned = await runCli(['plan', '-f', dir], { stateDir });
    assert.equal(await plans('declined'), declined + 1);
    const direct = await runCli(['plan', '-f', dir, '--direct'], { stateDir });
    const untimed = (out: string) => out.replace(/answered after [\d.]+s/g, 'answered after Ns');
    assert.deepEqual([planned.code, untimed(planned.stdout)], [1, untimed(direct.stdout)]);
    await rm(path.join(dir, 'vw.yaml'));
  });

  it("passes by a killed loop's socket, is served again by the next loop, and a stopped loop leaves none", async () => {
    await acetate!.stop('SIGKILL');
    acetate = undefined;
    assert.ok((await lstat(socket)).isSocket(), 'a killed loop leaves its socket');
    const t0 = Date.now();
    const direct = await get();
    assert.deepEqual([...direct.keys()].sort(), ['va', 'vb', 'vd'], 'read from the node');
    assert.ok(Date.now() - t0 < 20_000, 'no wait for a loop that is gone');

    await startLoop();
    await runcUpdateMemory('va', 80 * MI);
    assert.equal(await memoryColumn('va', '--direct'), '96Mi/80Mi');
    assert.equal(await memoryColumn('va'), '96Mi/96Mi', 'answered by the new loop');
    await runcUpdateMemory('va', 96 * MI);

    await acetate!.stop();
    acetate = undefined;
    await assert.rejects(lstat(socket), /ENOENT/, 'a stopped loop removes its socket');
    assert.equal(await memoryColumn('va'), '96Mi/96Mi', 'read from the node');

    // Something else under the socket's name is not removed: the loop runs, get and plan read the node.
    await writeFile(socket, 'not a socket\n');
    await startLoop();
    await waitFor(() => acetate!.logged(/get and plan will read the node themselves: .*not a socket/), { timeoutMs: 10_000, message: 'warned' });
    await runcUpdateMemory('va', 80 * MI);
    assert.equal(await memoryColumn('va'), '96Mi/80Mi', 'read from the node');
    await runcUpdateMemory('va', 96 * MI);
    await acetate!.stop();
    acetate = undefined;
    await rm(socket, { force: true });
  });
});
