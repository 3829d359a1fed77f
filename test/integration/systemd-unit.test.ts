/**
 * controller/systemd/acetate.service, checked by systemd itself: `systemd-analyze verify` (works
 * offline, without systemd as PID 1). verify also checks that ExecStart's binary exists, so the
 * unit is verified as shipped except for that one path, pointed at this checkout's bin/acetate.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/api/crd.js';
import { exec } from '../../src/util/exec.js';

const UNIT = path.join(PACKAGE_ROOT, 'controller', 'systemd', 'acetate.service');
const INSTALLED_BINARY = '/usr/local/bin/acetate';

async function verify(text: string): Promise<{ code: number; out: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-unit-'));
  try {
    const file = path.join(dir, 'acetate.service');
    await writeFile(file, text);
    const r = await exec('systemd-analyze', ['verify', file], { okExitCodes: [0, 1], timeoutMs: 30_000 });
    return { code: r.exitCode, out: `${r.stdout}${r.stderr}`.trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('systemd unit (controller/systemd/acetate.service)', function () {
  this.timeout(60_000);
  let unit: string;
  before(async () => {
    unit = await readFile(UNIT, 'utf8');
  });

  const directive = (name: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${name}=`))
      .map((l) => l.slice(name.length + 1));

  it('runs acetate run -f on a directory set by an optional EnvironmentFile, restarts on failure, and kills only acetate', () => {
    assert.deepEqual(directive('ExecStart'), [`${INSTALLED_BINARY} run -f \${ACETATE_MANIFESTS} $ACETATE_OPTS`]);
    assert.ok(directive('Environment').includes('ACETATE_MANIFESTS=/etc/acetate/containers'));
    assert.deepEqual(directive('EnvironmentFile'), ['-/etc/default/acetate'], 'optional: the unit works without it');
    assert.deepEqual(directive('Restart'), ['on-failure']);
    assert.deepEqual(directive('KillMode'), ['process'], 'conmons and containers survive a restart of acetate');
    assert.deepEqual(directive('WantedBy'), ['multi-user.target']);
  });

  it('systemd-analyze verify finds nothing to say about it', async () => {
    const r = await verify(unit.replaceAll(INSTALLED_BINARY, path.join(PACKAGE_ROOT, 'bin', 'acetate')));
    assert.equal(r.out, '');
    assert.equal(r.code, 0);
  });

  it('and does complain about a broken one (the check can fail)', async () => {
    const broken = await verify(unit.replaceAll(INSTALLED_BINARY, path.join(PACKAGE_ROOT, 'bin', 'acetate')).replace('KillMode=process', 'KillMode=sometimes'));
    assert.match(broken.out, /kill mode/i);
    const missing = await verify(unit);
    if (!(await exec('test', ['-x', INSTALLED_BINARY], { okExitCodes: [0, 1] })).exitCode) return; // installed here: nothing to miss
    assert.match(missing.out, /is not executable/);
  });
});
