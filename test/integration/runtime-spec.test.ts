/**
 * What the OCI config gives the process, observed from inside real containers: hostname, env,
 * cwd, network namespaces, bind mounts, capabilities, no_new_privs, rlimits, masked paths.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NormalizedSpec } from '../../src/api/types.js';
import { ALL_CAPABILITIES } from '../../src/runtime/runc/oci-config.js';
import { hostNofileHard } from '../../src/runtime/runc/procfs.js';
import { assertNoLeaks } from '../support/leaks.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { waitFor } from '../support/wait.js';

const PROBE = [
  'echo "hostname=$(hostname)"',
  'echo "path=$PATH"',
  'echo "pwd=$(pwd)"',
  'echo "foo=$FOO"',
  'echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\\n" ,)"',
  'echo "capeff=$(grep ^CapEff /proc/self/status | cut -f2)"',
  'echo "nnp=$(grep ^NoNewPrivs /proc/self/status | cut -f2)"',
  'echo "nofile=$(ulimit -n)"',
  '(echo x > /data-ro/w) 2>/dev/null && echo ro=writable || echo ro=readonly',
  '(echo x > /data-rw/w) 2>/dev/null && echo rw=writable || echo rw=readonly',
  'echo "seen=$(cat /data-ro/hello)"',
  'echo "timerlist=$(wc -c < /proc/timer_list)"',
  'echo "sys=$(grep " /sys sysfs " /proc/mounts | cut -d" " -f4 | cut -d, -f1)"',
  'echo probe-done',
  'exec sleep 1000',
].join('; ');

function parse(log: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of log.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

function capMask(caps: readonly string[]): bigint {
  return caps.reduce((m, c) => m | (1n << BigInt(ALL_CAPABILITIES.indexOf(c))), 0n);
}

describe('OCI config as seen from inside a container', function () {
  this.timeout(60_000);
  let st: TmpState;
  let roDir: string;
  let hostDir: string;
  let rwDir: string;

  const probe = async (name: string, spec: Partial<NormalizedSpec>): Promise<Record<string, string>> => {
    await st.runtime.create({ namespace: 'default', name, spec: testSpec({ command: ['sh', '-c', PROBE], ...spec }), source: FILE_SOURCE });
    await st.runtime.start(`default/${name}`);
    const log = await waitFor(`${name} probe output`, async () => {
      const t = await st.runtime.logs(`default/${name}`);
      return t.includes('probe-done') ? t : undefined;
    });
    return parse(log);
  };

  before(async () => {
    st = await tmpState();
    // Host directories to bind-mount: outside the state dir, which acetate never mounts into a container.
    hostDir = await mkdtemp(path.join(os.tmpdir(), 'acetate-hostdirs-'));
    roDir = path.join(hostDir, 'host-ro');
    rwDir = path.join(hostDir, 'host-rw');
    await mkdir(roDir);
    await mkdir(rwDir);
    await writeFile(path.join(roDir, 'hello'), 'from-host');
  });

  after(async () => {
    await st.cleanupAndAssertNoLeaks();
    await rm(hostDir, { recursive: true, force: true });
  });

  it('a default container: own hostname, default PATH, cwd, loopback only, Docker caps, no_new_privs, masked paths', async () => {
    const got = await probe('plain', {
      hostname: 'box1',
      workingDir: '/etc',
      env: [{ name: 'FOO', value: 'bar baz' }],
      mounts: [
        { hostPath: roDir, containerPath: '/data-ro', readOnly: true },
        { hostPath: rwDir, containerPath: '/data-rw', readOnly: false },
      ],
      security: { privileged: false, noNewPrivileges: true, capAdd: ['CAP_NET_ADMIN'], capDrop: ['CAP_CHOWN'] },
    });
    assert.equal(got.hostname, 'box1');
    assert.equal(got.path, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    assert.equal(got.pwd, '/etc');
    assert.equal(got.foo, 'bar baz');
    assert.equal(got.ifaces, 'lo,', 'network none: a private netns with only loopback');
    const expected = capMask([
      'CAP_DAC_OVERRIDE',
      'CAP_FSETID',
      'CAP_FOWNER',
      'CAP_MKNOD',
      'CAP_SETGID',
      'CAP_SETUID',
      'CAP_SETFCAP',
      'CAP_SETPCAP',
      'CAP_NET_BIND_SERVICE',
      'CAP_SYS_CHROOT',
      'CAP_KILL',
      'CAP_AUDIT_WRITE',
      'CAP_NET_ADMIN',
    ]);
    assert.equal(BigInt(`0x${got.capeff}`), expected, `CapEff ${got.capeff}`);
    assert.equal(got.nnp, '1');
    assert.equal(got.nofile, String(Math.min(await hostNofileHard(), 1_048_576)));
    assert.equal(got.ro, 'readonly');
    assert.equal(got.rw, 'writable');
    assert.equal(got.seen, 'from-host');
    assert.equal(await readFile(path.join(rwDir, 'w'), 'utf8'), 'x\n', 'the rw bind mount writes through to the host');
    assert.equal(got.timerlist, '0', '/proc/timer_list is masked');
    assert.equal(got.sys, 'ro');
  });

  it('network host shares the node network; hostname defaults to the name', async () => {
    const got = await probe('hostnet', { network: 'host' });
    const hostIfaces = (await readFile('/proc/net/dev', 'utf8'))
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]!.trim())
      .filter(Boolean)
      .sort();
    assert.equal(got.ifaces, `${hostIfaces.join(',')},`);
    assert.equal(got.hostname, 'hostnet');
  });

  it('privileged: all capabilities, no no_new_privs, writable /sys', async () => {
    const got = await probe('priv', { security: { privileged: true, noNewPrivileges: false, capAdd: [], capDrop: [] } });
    const eff = BigInt(`0x${got.capeff}`);
    const sysAdmin = capMask(['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_NET_ADMIN', 'CAP_SYS_MODULE']);
    assert.equal(eff & sysAdmin, sysAdmin, `CapEff ${got.capeff}`);
    assert.equal(got.nnp, '0');
    assert.notEqual(got.timerlist, '0', 'nothing masked');
    assert.equal(got.sys, 'rw');
  });

  it('refuses a mount path that escapes with ..', async () => {
    await assert.rejects(
      st.runtime.create({
        namespace: 'default',
        name: 'escape',
        spec: testSpec({ mounts: [{ hostPath: roDir, containerPath: '/data/../../etc', readOnly: true }] }),
        source: FILE_SOURCE,
      }),
      /must not contain '\.\.'/,
    );
    assert.equal(await st.runtime.get('default/escape'), undefined);
  });

  it('with the init, a command that does not exist ends the container at once, the reason in its log', async () => {
    await st.runtime.create({ namespace: 'default', name: 'badinit', spec: testSpec({ command: ['/no/such/binary'] }), source: FILE_SOURCE });
    await st.runtime.start('default/badinit');
    const c = await waitFor('exited', async () => {
      const a = await st.runtime.get('default/badinit');
      return a?.process.state === 'exited' ? a : undefined;
    });
    assert.equal(c.process.exitCode, 1);
    assert.match(await st.runtime.logs('default/badinit'), /failed to exec pid1: No such file or directory/);
    await st.runtime.remove('default/badinit', { keepPrivateArea: false });
  });

  it('without the init, a command that does not exist fails start() with runc’s reason and leaves nothing running', async () => {
    await st.runtime.create({ namespace: 'default', name: 'bad', spec: testSpec({ command: ['/no/such/binary'], init: false }), source: FILE_SOURCE });
    await assert.rejects(st.runtime.start('default/bad'), /cannot start default\/bad: .*no such file or directory/);
    const c = await st.runtime.get('default/bad');
    assert.equal(c!.process.state, 'absent');
    assert.equal(c!.restartCount, 0);
    for (const c2 of await st.runtime.list()) await st.runtime.remove(c2.key, { keepPrivateArea: false });
    await assertNoLeaks(st.dir);
  });
});
