/**
 * network: bridge through the real CLI: validation errors with file and line, `acetate run`
 * changing a published port in place, a port conflict reported as Ready=False, and a simulated
 * reboot after which the survivor gets its address back and nothing of the removed is left.
 */
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import assert from 'node:assert/strict';
import { readdir, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { describeRecord, readyCondition } from '../support/describe-record.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { snapshotLeaks } from '../support/leaks.js';
import { networkEnv, snapshotNetworkLeaks, testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { bridgeWebManifest, freePort, httpGet } from '../support/network-test.js';
import { cliDirs, type CliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { isAlive } from '../support/proc.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { unmountAll } from '../../src/util/mounts.js';
import { exec } from '../../src/util/exec.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const web = (name: string, hostPort: number, extra = ''): string => bridgeWebManifest(name, hostPort, { extra });
/** web-a: a memory limit and, said explicitly, a user namespace of its own (the default). */
const A_EXTRA = '  resources: { memory: 48Mi }\n  securityContext: { hostUsers: false }\n';

describe('network: bridge through the CLI (real CNI plugins)', function () {
  this.timeout(180_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let n: TestNetwork;
  let env: NodeJS.ProcessEnv;
  let run: CliProcess | undefined;

  const cli = (args: string[]) => runCli(args, { stateDir, env });
  const describeJson = async (name: string) =>
    (await describeRecord(name, { stateDir, env })) as StatusRecord & { nodeNetwork?: { bridge: string; subnet: string } };
  const ready = readyCondition;

  before(async () => {
    n = await testNetwork();
    ({ stateDir, dir } = dirs = await cliDirs({ network: n }));
    env = networkEnv(n);
  });
  after(async () => {
    await run?.stop('SIGKILL');
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('validate names file, line and field of bad ports', async () => {
    const bad = path.join(dir, '..', `${path.basename(dir)}-bad.yaml`);
    await writeFile(
      bad,
      `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: bad
spec:
  template: host
  command: ["sleep", "1"]
  network: bridge
  ports:
    - containerPort: 70000
    - containerPort: 80
      hostPort: 8080
      protocol: SCTP
    - containerPort: 81
      hostPort: 8081
      hostIP: 300.1.2.3
`,
    );
    const r = await cli(['validate', bad]);
    await unlink(bad);
    assert.equal(r.code, 1);
    assert.match(r.stderr + r.stdout, /bad\.yaml:10: spec\.ports\[0\]\.containerPort: 70000 must be at most 65535/);
    assert.match(r.stderr + r.stdout, /bad\.yaml:13: spec\.ports\[1\]\.protocol: 'SCTP' is not one of TCP, UDP/);
    assert.match(r.stderr + r.stdout, /bad\.yaml:16: spec\.ports\[2\]\.hostIP: '300\.1\.2\.3' is not an IPv4 address/);
  });

  it('acetate run: a changed hostPort is published in place (same pid); a claimed port is a PortConflict; after a reboot the survivor has its address back and the removed leave nothing', async () => {
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    await writeFile(path.join(dir, 'a.yaml'), web('web-a', p1, A_EXTRA));
    await writeFile(path.join(dir, 'b.yaml'), web('web-b', p2));
    run = new CliProcess(['run', '-f', dir, ...quickRunFlags({ resync: '1s' })], { stateDir, env: { ...env, ACETATE_BACKOFF_BASE_MS: '200' } });
    assert.equal(await waitFor(() => httpGet('127.0.0.1', p1), { timeoutMs: 30_000 }), 'hello-web-a\n');
    assert.equal(await waitFor(() => httpGet('127.0.0.1', p2), { timeoutMs: 30_000 }), 'hello-web-b\n');
    const a = await waitFor(
      async () => {
        const rec = await describeJson('web-a');
        return rec.status.ip && ready(rec)?.status === 'True' ? rec : undefined;
      },
      { timeoutMs: 20_000 },
    );
    const ipA = a.status.ip!;
    const pidA = a.actual!.pid!;
    // Its network namespace is its user namespace's (network/netns.ts): `acetate exec` enters it
    // (runc 1.1.5 joins the user namespace first), it has a sysfs of its own network instead of
    // the node's /sys (which showed every container's cgroup, named by its key), its own cgroup
    // namespace, and its own cgroups at /sys/fs/cgroup: what sizes itself from its memory limit
    // (the JVM, libuv) finds it there, and nothing of the node's tree.
    const inside = await cli([
      'exec',
      'web-a',
      '--',
      'sh',
      '-c',
      'grep :memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; find /sys/fs/cgroup/memory -mindepth 1 -type d | wc -l; ls /sys/class/net; cat /proc/self/uid_map',
    ]);
    assert.equal(inside.code, 0, inside.stderr);
    const [cg, limit, subdirs, ...rest] = inside.stdout.trim().split('\n');
    assert.match(cg!, /^\d+:memory:\/$/, `its own cgroup namespace: ${inside.stdout}`);
    assert.equal(Number(limit), 48 * 2 ** 20, `its memory limit, read inside: ${inside.stdout}`);
    assert.equal(subdirs!.trim(), '0', `none of the node's cgroups: ${inside.stdout}`);
    assert.deepEqual(rest.slice(0, -1).sort(), ['eth0', 'lo'], `its own network's sysfs: ${inside.stdout}`);
    const [inner, outer] = rest.at(-1)!.trim().split(/\s+/).map(Number);
    assert.equal(inner, 0);
    assert.ok(outer! >= 65536, `a range of node ids, not the node's: ${rest.at(-1)}`);
    assert.equal(a.actual?.network?.ip, ipA);
    assert.deepEqual(a.nodeNetwork && { bridge: a.nodeNetwork.bridge, subnet: a.nodeNetwork.subnet }, n);
    const wide = await cli(['get', '-o', 'wide']);
    assert.match(wide.stdout, new RegExp(`web-a .*${ipA.replace(/\./g, '\\.')}\\s+127\\.0\\.0\\.1:${p1}→80/TCP`));
    const text = await cli(['describe', 'web-a']);
    assert.match(text.stdout, new RegExp(`IP:\\s+${ipA.replace(/\./g, '\\.')}`));
    assert.match(text.stdout, new RegExp(`Node network:\\s+bridge ${n.bridge}, subnet ${n.subnet.replace(/\./g, '\\.')}`));

    // The plan says it is in place; `run` does it: same pid, the old port stops answering.
    // `run` is paused (SIGSTOP) while plan reads: it would otherwise apply the same edit (debounced
    // 100 ms) and plan could find the new port already in force. Its inotify events wait in the kernel.
    process.kill(run!.child.pid!, 'SIGSTOP');
    let planned: Awaited<ReturnType<typeof cli>>;
    try {
      await writeFile(path.join(dir, 'a.yaml'), web('web-a', p3, A_EXTRA));
      planned = await cli(['plan', '-f', dir]);
    } finally {
      process.kill(run!.child.pid!, 'SIGCONT');
    }
    // Two steps: the old port released, then the new one claimed (plan/network.ts).
    assert.match(
      planned.stdout,
      new RegExp(`~ ports\\s+default/web-a\\s+ports 127\\.0\\.0\\.1:${p1}→80/TCP released first \\(in place\\), then 127\\.0\\.0\\.1:${p3}→80/TCP claimed`),
    );
    assert.match(planned.stdout, new RegExp(`~ ports\\s+default/web-a\\s+ports none → 127\\.0\\.0\\.1:${p3}→80/TCP \\(in place\\)`));
    assert.equal(await waitFor(() => httpGet('127.0.0.1', p3), { timeoutMs: 20_000 }), 'hello-web-a\n');
    assert.equal(await httpGet('127.0.0.1', p1), undefined, 'the old port no longer answers');
    assert.equal((await describeJson('web-a')).actual?.pid, pidA, 'same pid');

    // A third container claims b's port: reported, not started; b untouched.
    await writeFile(path.join(dir, 'c.yaml'), web('web-c', p2));
    const c = await waitFor(
      async () => {
        const rec = await describeJson('web-c');
        return ready(rec)?.reason === 'PortConflict' ? rec : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.equal(ready(c)?.status, 'False');
    assert.match(ready(c)?.message ?? '', /already published by default\/web-b/);
    assert.equal(c.actual?.state, 'absent');
    assert.equal(await httpGet('127.0.0.1', p2), 'hello-web-b\n');

    // Reboot: acetate stops, every process ends, the run dir (tmpfs) and the bridge are gone.
    await run.stop();
    const ip = instancePaths(stateDir);
    for (const p of (await snapshotLeaks(stateDir)).processes) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(async () => (await snapshotLeaks(stateDir)).processes.length === 0, { timeoutMs: 10_000 });
    for (const dir of ['netns', 'userns']) for (const ns of await readdir(path.join(ip.runDir, dir))) await unmountAll(path.join(ip.runDir, dir, ns));
    await unmountAll(layersDirOf(ip.runDir, ip.stateDir)); // the host view's layers' tmpfs (host-layer.ts)
    await rm(ip.runDir, { recursive: true, force: true });
    await exec('ip', ['link', 'del', n.bridge]);
    const rulesBefore = (await snapshotNetworkLeaks(stateDir, n)).iptables;
    assert.ok(
      rulesBefore.some((r) => r.includes('default_web-b')),
      'rules of b survive this simulated reboot (a real one flushes them)',
    );

    // b and c are no longer declared.
    await unlink(path.join(dir, 'b.yaml'));
    await unlink(path.join(dir, 'c.yaml'));
    const applied = await cli(['apply', '-f', dir]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    const after = await describeJson('web-a');
    assert.equal(after.actual?.network?.ip, ipA, 'the survivor has its address back');
    assert.notEqual(after.actual?.pid, pidA);
    assert.ok(isAlive(after.actual!.pid!));
    assert.equal(await waitFor(() => httpGet('127.0.0.1', p3), { timeoutMs: 20_000 }), 'hello-web-a\n');
    assert.equal(await waitFor(() => httpGet(ipA, 80)), 'hello-web-a\n');
    const left = await snapshotNetworkLeaks(stateDir, n);
    assert.deepEqual(left.netns, ['default_web-a']);
    assert.deepEqual(left.userns, ['default_web-a'], 'and the user namespace that owns it');
    assert.deepEqual(left.leases, [ipA]);
    assert.equal(left.veths.length, 1);
    assert.deepEqual(
      left.iptables.filter((r) => /web-b|web-c/.test(r)),
      [],
      'no rule of the removed',
    );

    await unlink(path.join(dir, 'a.yaml'));
    const destroyed = await cli(['apply', '-f', dir, '--allow-empty']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    const empty = await snapshotNetworkLeaks(stateDir, n);
    assert.deepEqual(empty, { netns: [], userns: [], leases: [], veths: [], iptables: [], walls: [] }, 'nothing of any container is left');
  });
});
