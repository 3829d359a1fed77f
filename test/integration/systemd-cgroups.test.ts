/**
 * Containers and their conmons live outside the cgroup of the systemd unit that runs acetate, so
 * a stop or restart of acetate.service never reaches them. systemd is not PID 1 here: the unit's
 * cgroup is modelled by a cgroup of its own in each hierarchy systemd tracks processes by
 * (name=systemd and the unified one on this hybrid node), which `acetate run` joins before its
 * first instruction, as a unit's main process does; a stop is what systemd does with
 * KillMode=mixed: SIGTERM to acetate, then SIGKILL to whatever is left in the unit's cgroup.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { isAlive } from '../support/proc.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { trackingHierarchies } from '../../src/runtime/runc/conmon-cgroup.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

/** The cgroup of pid in hierarchy h (a dir under /sys/fs/cgroup), from /proc/<pid>/cgroup. */
async function cgroupIn(pid: number, h: string): Promise<string> {
  const name = path.basename(h);
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).trim().split('\n');
  // v1 named hierarchy "N:name=systemd:/path"; the unified one (hybrid or v2) "0::/path".
  const line = lines.find((l) => (name === 'systemd' ? l.split(':')[1] === 'name=systemd' : l.startsWith('0::')));
  assert.ok(line, `pid ${pid} has a cgroup in ${h}`);
  return line.split(':').slice(2).join(':');
}

/** Every pid in a cgroup dir and its children. */
async function procsUnder(dir: string): Promise<number[]> {
  const own = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
  const subs = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory());
  return [...own, ...(await Promise.all(subs.map((e) => procsUnder(path.join(dir, e.name))))).flat()];
}

describe('systemd: containers and conmons outside the unit cgroup of acetate', function () {
  this.timeout(120_000);
  let dirs: CliDirs;
  let acetate: CliProcess | undefined;
  const unit = `/acetate-test-${randomBytes(4).toString('hex')}.slice/acetate.service`;
  let hierarchies: string[];
  const unitDirs = () => hierarchies.map((h) => path.join(h, unit));

  before(async () => {
    dirs = await cliDirs();
    hierarchies = await trackingHierarchies();
    assert.ok(hierarchies.length > 0, 'a hierarchy systemd tracks processes by (name=systemd or cgroup2) is mounted');
    for (const d of unitDirs()) await mkdir(d, { recursive: true });
  });
  after(async () => {
    await acetate?.stop();
    for (const d of unitDirs()) {
      await rmdir(d).catch(() => undefined);
      await rmdir(path.dirname(d)).catch(() => undefined);
    }
    await dirs.cleanupAndAssertNoLeaks();
  });

  const start = (): CliProcess => new CliProcess(['run', '-f', dirs.dir, ...quickRunFlags()], { stateDir: dirs.stateDir, cgroups: unitDirs() });
  const runningPid = (name: string): Promise<number> =>
    waitFor(
      async () => {
        const r = await runCli(['describe', name, '-o', 'json'], { stateDir: dirs.stateDir });
        const rec = r.code === 0 ? (JSON.parse(r.stdout) as StatusRecord) : undefined;
        return rec?.actual?.state === 'running' ? rec.actual.pid : undefined;
      },
      { timeoutMs: 30_000, message: `${name} running` },
    );

  it('puts conmon and the container outside the unit cgroup; a stop of the unit (SIGTERM, then SIGKILL of what is left) leaves both running, adopted after', async () => {
    await writeFile(path.join(dirs.dir, 'web.yaml'), manifest('web'));
    acetate = start();
    const pid = await runningPid('web');
    const ip = instancePaths(dirs.stateDir);
    const conmon = Number(await readFile(path.join(ip.runContainersDir, 'default_web', 'conmon.pid'), 'utf8'));
    assert.ok(isAlive(conmon));
    for (const h of hierarchies) {
      assert.equal(await cgroupIn(acetate.pid!, h), unit, `acetate runs in the unit's cgroup (${h})`);
      assert.equal(await cgroupIn(conmon, h), `${ip.cgroupParent}/conmon`, `conmon is in the conmons' cgroup (${h})`);
      assert.equal(await cgroupIn(pid, h), `${ip.cgroupParent}/default_web`, `the container is in its own cgroup (${h})`);
    }
    for (const d of unitDirs()) {
      const inUnit = await procsUnder(d);
      assert.ok(inUnit.includes(acetate.pid!));
      assert.ok(!inUnit.includes(conmon) && !inUnit.includes(pid), `${d} holds neither conmon nor the container: ${inUnit.join(' ')}`);
    }

    // systemctl stop/restart with KillMode=mixed: SIGTERM to the main process, SIGKILL to the rest.
    assert.deepEqual(await acetate.stop('SIGTERM'), { code: 0, signal: null });
    for (const d of unitDirs()) for (const p of await procsUnder(d)) process.kill(p, 'SIGKILL');
    assert.ok(isAlive(conmon), 'conmon survives the stop of the unit');
    assert.ok(isAlive(pid), 'the container survives the stop of the unit');

    acetate = start();
    await waitFor(() => acetate!.logged(/^ready: first sync done$/), { timeoutMs: 30_000, message: 'ready again' });
    assert.equal(await runningPid('web'), pid, 'the restarted acetate adopts the container: same process');
    assert.ok(isAlive(conmon));
    assert.equal(acetate.lines.filter((l) => l.container === 'default/web' && typeof l.action === 'string').length, 0, 'no action on web');
  });

  it('at system shutdown, acetate-shutdown.service (after acetate.service stopped) ends each container with its own grace period; the next run starts them again', async () => {
    await acetate?.stop();
    await writeFile(path.join(dirs.dir, 'polite.yaml'), manifest('polite', { script: "trap 'exit 7' TERM; while true; do sleep 1; done", grace: 30 }));
    await writeFile(path.join(dirs.dir, 'stubborn.yaml'), manifest('stubborn', { script: "trap '' TERM; while true; do sleep 1; done", grace: 2 }));
    acetate = start();
    const polite = await runningPid('polite');
    const stubborn = await runningPid('stubborn');
    assert.deepEqual(await acetate.stop('SIGTERM'), { code: 0, signal: null });

    const r = await runCli(['shutdown'], { stateDir: dirs.stateDir });
    assert.equal(r.code, 0, r.stderr);
    // SIGTERM handled: its own exit code, long before its 30 s; SIGTERM ignored: SIGKILL after 2 s.
    assert.match(r.stdout, /^stopped default\/polite: exit 7 after \d+\.\ds \(grace period 30s\)$/m);
    const stubborn137 = /^stopped default\/stubborn: exit 137 after (\d+\.\d)s \(grace period 2s\)$/m.exec(r.stdout);
    assert.ok(stubborn137, r.stdout);
    assert.ok(Number(stubborn137[1]) >= 2, 'not killed before its grace period');
    assert.match(r.stdout, /^stopped default\/web: /m);
    assert.ok(!isAlive(polite) && !isAlive(stubborn));
    assert.match((await runCli(['shutdown'], { stateDir: dirs.stateDir })).stdout, /^no container is running$/m);

    acetate = start();
    const again = await runningPid('polite');
    assert.notEqual(again, polite, 'started again by the next run');
  });
});
