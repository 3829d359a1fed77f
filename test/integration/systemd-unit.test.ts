/**
 * controller/systemd/*.service, checked by systemd itself: `systemd-analyze verify --root=TREE`
 * (works offline, without systemd as PID 1). The units are verified byte for byte as shipped,
 * installed as the README installs them into a fresh root tree (units in /etc/systemd/system,
 * this checkout's bin/acetate as /usr/local/bin/acetate), so the test needs nothing installed on
 * the machine: verify resolves every path, the binaries' too, inside the tree. The tree also
 * holds what verify loads besides: systemd's own units and the /bin/kill and /bin/true they run.
 */
import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { exec } from '../../src/util/exec.js';

const UNITS = path.join(PACKAGE_ROOT, 'controller', 'systemd');
const SYSTEM_UNITS = '/usr/lib/systemd/system';

/** A root tree with systemd's units, kill and true, and (install: true) acetate as the README installs it. */
async function makeTree(install: boolean): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'acetate-unit-root-'));
  await mkdir(path.join(root, 'usr', 'bin'), { recursive: true });
  await mkdir(path.join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  await mkdir(path.join(root, 'etc', 'systemd', 'system'), { recursive: true });
  await symlink('usr/bin', path.join(root, 'bin')); // as on Debian 12: /bin -> usr/bin
  await cp(SYSTEM_UNITS, path.join(root, SYSTEM_UNITS), { recursive: true, verbatimSymlinks: true });
  for (const b of ['kill', 'true']) await copyFile(path.join('/usr/bin', b), path.join(root, 'usr', 'bin', b));
  for (const u of ['acetate.service', 'acetate-shutdown.service']) await copyFile(path.join(UNITS, u), path.join(root, 'etc', 'systemd', 'system', u));
  if (install) {
    await mkdir(path.join(root, 'usr', 'local', 'bin'), { recursive: true });
    await copyFile(path.join(PACKAGE_ROOT, 'bin', 'acetate'), path.join(root, 'usr', 'local', 'bin', 'acetate'));
  }
  return root;
}

async function verify(root: string, unit: string): Promise<{ code: number; out: string }> {
  const r = await exec('systemd-analyze', ['verify', `--root=${root}`, '--man=no', unit], { okExitCodes: [0, 1], timeoutMs: 30_000 });
  return { code: r.exitCode, out: `${r.stdout}${r.stderr}`.trim() };
}

describe('systemd units (controller/systemd)', function () {
  this.timeout(60_000);
  const trees: string[] = [];
  const tree = async (install: boolean) => {
    trees.push(await makeTree(install));
    return trees.at(-1)!;
  };
  let unit: string;
  let shutdown: string;
  before(async () => {
    unit = await readFile(path.join(UNITS, 'acetate.service'), 'utf8');
    shutdown = await readFile(path.join(UNITS, 'acetate-shutdown.service'), 'utf8');
  });
  after(async () => {
    for (const t of trees) await rm(t, { recursive: true, force: true });
  });

  const directive = (text: string, name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}=`))
      .map((l) => l.slice(name.length + 1));

  it('acetate.service: Type=notify with a watchdog, acetate run -f on a directory set by an optional EnvironmentFile, restarts on failure', () => {
    assert.deepEqual(directive(unit, 'Type'), ['notify']);
    assert.deepEqual(directive(unit, 'WatchdogSec'), ['30s']);
    assert.deepEqual(directive(unit, 'NotifyAccess'), [], 'the default, main: acetate notifies from its own pid');
    assert.deepEqual(directive(unit, 'ExecStart'), ['/usr/local/bin/acetate run -f ${ACETATE_MANIFESTS} $ACETATE_OPTS']);
    assert.ok(directive(unit, 'Environment').includes('ACETATE_MANIFESTS=/etc/acetate/containers'));
    assert.deepEqual(directive(unit, 'EnvironmentFile'), ['-/etc/default/acetate'], 'optional: the unit works without it');
    assert.deepEqual(directive(unit, 'Restart'), ['on-failure']);
    // conmons and containers are outside the unit's cgroup (systemd-cgroups.test.ts): the unit's
    // stop may kill whatever else is left in it.
    assert.deepEqual(directive(unit, 'KillMode'), ['mixed']);
    assert.deepEqual(directive(unit, 'WantedBy'), ['multi-user.target']);
  });

  it('acetate-shutdown.service stops the containers after acetate.service has stopped, before the network goes', () => {
    assert.deepEqual(directive(shutdown, 'Type'), ['oneshot']);
    assert.deepEqual(directive(shutdown, 'RemainAfterExit'), ['yes']);
    assert.deepEqual(directive(shutdown, 'ExecStop'), ['/usr/local/bin/acetate shutdown $ACETATE_SHUTDOWN_OPTS']);
    assert.deepEqual(directive(shutdown, 'Before'), ['acetate.service'], 'started before acetate, so stopped after it');
    assert.ok(directive(shutdown, 'After')[0]!.split(' ').includes('network-online.target'));
    assert.ok(directive(unit, 'Wants')[0]!.split(' ').includes('acetate-shutdown.service'), 'acetate.service pulls it in');
  });

  it('systemd-analyze verify finds nothing to say about either, installed in a fresh root as the README installs them', async () => {
    const root = await tree(true);
    for (const u of ['acetate.service', 'acetate-shutdown.service']) {
      const r = await verify(root, u);
      assert.equal(r.out, '', u);
      assert.equal(r.code, 0, u);
    }
  });

  it('and does complain about a broken one (the check can fail): acetate not installed, a bad KillMode', async () => {
    const missing = await verify(await tree(false), 'acetate.service');
    assert.match(missing.out, /Command \/usr\/local\/bin\/acetate is not executable/);
    assert.notEqual(missing.code, 0);
    const root = await tree(true);
    await writeFile(path.join(root, 'etc', 'systemd', 'system', 'acetate.service'), unit.replace('KillMode=mixed', 'KillMode=sometimes'));
    assert.match((await verify(root, 'acetate.service')).out, /kill mode/i);
  });
});
