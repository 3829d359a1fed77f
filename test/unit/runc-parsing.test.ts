/** Parsers of the runc runtime: cgroup files, mountinfo, CRI logs, /proc/<pid>/stat, runc errors, paths. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseCpuV1, parseCpuV2, parseMemoryLimit, parsePidsMax, sameMemory } from '../../src/runtime/runc/cgroups.js';
import { parseCriLog, readLogMessages, readTail } from '../../src/runtime/runc/logs.js';
import { parseMountInfo } from '../../src/util/mounts.js';
import { containerIdOf, containerPaths, defaultRunDirOf, instancePaths, keyOfId } from '../../src/runtime/runc/paths.js';
import { capabilitiesOfMask } from '../../src/runtime/runc/procfs.js';
import { parseProcStat } from '../../src/util/processes.js';
import { runcMessageOf } from '../../src/runtime/runc/runc-cli.js';
import { exec, ExecError } from '../../src/util/exec.js';

describe('cgroup value parsing', () => {
  it('memory: v1 huge value and v2 max are unlimited', () => {
    assert.equal(parseMemoryLimit('9223372036854771712\n'), undefined);
    assert.equal(parseMemoryLimit('max\n'), undefined);
    assert.equal(parseMemoryLimit('268435456\n'), 268435456);
  });

  it('cpu: quota/period to millicores, -1 / max unlimited', () => {
    assert.equal(parseCpuV1('50000', '100000'), 500);
    assert.equal(parseCpuV1('-1', '100000'), undefined);
    assert.equal(parseCpuV1('150000\n', '100000\n'), 1500);
    assert.equal(parseCpuV2('max 100000'), undefined);
    assert.equal(parseCpuV2('25000 100000'), 250);
  });

  it('pids: max is unlimited', () => {
    assert.equal(parsePidsMax('max\n'), undefined);
    assert.equal(parsePidsMax('64\n'), 64);
  });

  it('sameMemory tolerates the kernel rounding down to a page', () => {
    assert.ok(sameMemory(undefined, undefined));
    assert.ok(!sameMemory(undefined, 4096));
    assert.ok(sameMemory(100 * 2 ** 20 + 1000, 100 * 2 ** 20));
    assert.ok(!sameMemory(100 * 2 ** 20 + 4096, 100 * 2 ** 20));
  });
});

describe('mountinfo parsing', () => {
  it('reads mount points with octal escapes', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '99 22 0:50 / /tmp/a\\040b/rootfs rw,relatime - overlay overlay rw,lowerdir=/,upperdir=/x',
    ].join('\n');
    const m = parseMountInfo(text);
    assert.equal(m.length, 2);
    assert.equal(m[1]!.mountPoint, '/tmp/a b/rootfs');
    assert.equal(m[1]!.fsType, 'overlay');
    assert.equal(m[0]!.fsType, 'ext4');
  });
});

describe('CRI log parsing', () => {
  it('joins partial lines per stream, keeps empty lines', () => {
    const text = [
      '2024-01-01T00:00:00.1+00:00 stdout P hel',
      '2024-01-01T00:00:00.2+00:00 stderr F oops',
      '2024-01-01T00:00:00.3+00:00 stdout F lo world',
      '2024-01-01T00:00:00.4+00:00 stdout F ',
      '2024-01-01T00:00:00.5+00:00 stdout P tail without newline',
      '',
    ].join('\n');
    assert.deepEqual(
      parseCriLog(text).map((l) => [l.stream, l.message.toString()]),
      [
        ['stderr', 'oops'],
        ['stdout', 'hello world'],
        ['stdout', ''],
        ['stdout', 'tail without newline'],
      ],
    );
  });

  it('reads only the tail of a large log', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-log-'));
    try {
      const file = path.join(dir, 'c.log');
      const lines = Array.from({ length: 5000 }, (_, i) => `2024-01-01T00:00:00Z stdout F line ${i}`);
      await writeFile(file, `${lines.join('\n')}\n`);
      assert.equal((await readLogMessages(file, { tail: 2 })).toString(), 'line 4998\nline 4999\n');
      assert.equal((await readLogMessages(file)).toString().split('\n').length, 5001);
      assert.equal((await readLogMessages(file, { tail: 0 })).length, 0);
      const tail = await readTail(file, 3, 256);
      assert.ok(tail.length < 1024, 'read a few chunks, not the file');
      assert.equal((await readLogMessages(path.join(dir, 'missing.log'))).length, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('/proc parsing', () => {
  it('stat: state and start time, with a comm that has spaces and parentheses', () => {
    const fields = ['S', '1', '1', '1', '0', '-1', '4194560', '0', '0', '0', '0', '0', '0', '0', '0', '20', '0', '1', '0', '12345', '0'];
    const st = parseProcStat(`42 (my (odd) proc) ${fields.join(' ')}`);
    assert.deepEqual(st, { pid: 42, state: 'S', ppid: 1, startTime: 12345 });
  });

  it('capability masks', () => {
    assert.deepEqual(capabilitiesOfMask('0000000000000021'), ['CAP_CHOWN', 'CAP_KILL']);
    assert.equal(capabilitiesOfMask('000001fffeffffff').includes('CAP_SYS_RESOURCE'), false);
  });
});

describe('runc helpers', () => {
  it('extracts runc messages from its logfmt stderr', () => {
    assert.equal(runcMessageOf('time="2024-01-01T00:00:00Z" level=error msg="container does not exist"\n'), 'container does not exist');
    assert.equal(runcMessageOf('time="x" level=error msg="a \\"quoted\\" word"'), 'a "quoted" word');
    assert.equal(runcMessageOf('plain error\n'), 'plain error');
  });

  it('ids and paths', () => {
    assert.equal(containerIdOf('shop', 'web.v2'), 'shop_web.v2');
    assert.deepEqual(keyOfId('shop_web.v2'), { namespace: 'shop', name: 'web.v2', key: 'shop/web.v2' });
    assert.equal(keyOfId('nounderscore'), undefined);
    const a = instancePaths('/var/lib/acetate');
    const b = instancePaths('/var/lib/acetate2');
    assert.match(a.cgroupParent, /^\/acetate-[0-9a-f]{8}$/);
    assert.notEqual(a.cgroupParent, b.cgroupParent);
    assert.equal(instancePaths('/var/lib/acetate/').cgroupParent, a.cgroupParent);
    const cp = containerPaths(a, 'shop_web');
    assert.equal(cp.cgroupsPath, `${a.cgroupParent}/shop_web`);
    assert.equal(cp.record, '/var/lib/acetate/containers/shop_web/record.json');
    assert.equal(cp.upper, '/var/lib/acetate/containers/shop_web/upper');
    assert.equal(cp.log, '/var/lib/acetate/containers/shop_web/container.log');
    // What describes processes is in the run dir (a tmpfs): /run/acetate for the default state dir.
    assert.equal(a.runDir, '/run/acetate');
    assert.equal(a.runcRoot, '/run/acetate/runc');
    assert.equal(cp.exitFile, '/run/acetate/containers/shop_web/exits/shop_web');
    assert.equal(cp.config, '/run/acetate/containers/shop_web/bundle/config.json');
    assert.equal(cp.syncFile, '/run/acetate/containers/shop_web/conmon.sync');
  });

  it('the run dir: /run/acetate for the default state dir, <stateDir>/run for another, or as given', () => {
    assert.equal(defaultRunDirOf('/var/lib/acetate/'), '/run/acetate');
    assert.equal(defaultRunDirOf('/srv/acetate'), '/srv/acetate/run');
    const other = instancePaths('/srv/acetate');
    assert.equal(other.runcRoot, '/srv/acetate/run/runc');
    assert.equal(containerPaths(other, 'a_b').pidFile, '/srv/acetate/run/containers/a_b/pid');
    const given = instancePaths('/srv/acetate', '/run/x/');
    assert.equal(given.runDir, '/run/x');
    assert.equal(given.socketDir, '/run/x/sockets');
    assert.equal(given.cgroupParent, other.cgroupParent, 'the cgroup parent follows the state dir only');
    // The earlier layout (--run-dir <stateDir>): run files back in the container dir.
    const earlier = containerPaths(instancePaths('/srv/acetate', '/srv/acetate'), 'a_b');
    assert.equal(earlier.runDir, earlier.dir);
    assert.equal(earlier.bundle, '/srv/acetate/containers/a_b/bundle');
  });
});

describe('exec', () => {
  it('captures stdout and stderr', async () => {
    const r = await exec('sh', ['-c', 'echo out; echo err >&2']);
    assert.deepEqual(r, { stdout: 'out\n', stderr: 'err\n', exitCode: 0 });
  });

  it('fails with the command and stderr in the message', async () => {
    await assert.rejects(exec('sh', ['-c', 'echo bad thing >&2; exit 3']), (err: unknown) => {
      assert.ok(err instanceof ExecError);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /^sh -c "echo bad thing >&2; exit 3": exit code 3: bad thing$/);
      return true;
    });
  });

  it('a missing binary is an ExecError with the spawn error as cause', async () => {
    await assert.rejects(exec('/no/such/bin', []), (err: unknown) => {
      assert.ok(err instanceof ExecError);
      assert.match(err.message, /command not found/);
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
  });

  it('passes input and honours the timeout', async () => {
    assert.equal((await exec('cat', [], { input: 'hello' })).stdout, 'hello');
    await assert.rejects(exec('sleep', ['10'], { timeoutMs: 100 }), /timed out after 100 ms/);
  });
});
