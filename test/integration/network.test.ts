/**
 * network: bridge with the real CNI plugins, real namespaces and real iptables rules. Traffic goes
 * only to 127.0.0.1 and to the addresses of containers these tests create; every instance has a
 * bridge and a /24 of its own.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import { executeAction } from '../../src/apply/execute.js';
import { plan } from '../../src/plan/plan.js';
import { NetworkError } from '../../src/runtime/network/driver.js';
import { createNetns, netnsPathOf } from '../../src/runtime/network/netns.js';
import { holdFrames, holdsIn, netnsOfPid, newHoldName, unwalledPortsInto } from '../../src/runtime/network/repair-hold.js';
import { exec } from '../../src/util/exec.js';
import { snapshotNetworkLeaks, networkProblems, testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { desiredOf, freePort, httpGet, published, webRequest } from '../support/network-test.js';
import { makeRuntime, tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { isAlive } from '../support/proc.js';

/** The cgroup v1 freezer state file of a process's cgroup. */
async function freezerStateFile(pid: number): Promise<string> {
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => /^\d+:freezer:/.test(l))!;
  return `/sys/fs/cgroup/freezer${line.split(':')[2]}/freezer.state`;
}

describe('network: bridge (real CNI plugins)', function () {
  this.timeout(120_000);
  let st: TmpState;
  let n: TestNetwork;
  beforeEach(async () => {
    n = await testNetwork();
    st = await tmpState(undefined, { network: n });
  });
  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  async function startWeb(name: string, hostPort?: number): Promise<{ pid: number; ip: string }> {
    await st.runtime.create(webRequest(name, hostPort ? published(hostPort) : []));
    const { pid } = await st.runtime.start(`default/${name}`);
    const ip = (await st.runtime.get(`default/${name}`))?.network?.ip;
    assert.ok(ip, `${name} has an address`);
    return { pid, ip };
  }

  it('each container has its own address: the node reaches it, two serve :80 on two published ports, one reaches the other', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startWeb('web-a', pa);
    const b = await startWeb('web-b', pb);
    assert.notEqual(a.ip, b.ip);
    const prefix = n.subnet.split('.').slice(0, 3).join('.');
    assert.ok(a.ip.startsWith(prefix) && b.ip.startsWith(prefix), `addresses from ${n.subnet}: ${a.ip}, ${b.ip}`);
    assert.equal(await waitFor(() => httpGet(a.ip, 80)), 'hello-web-a\n', 'node → container address');
    assert.equal(await waitFor(() => httpGet(b.ip, 80)), 'hello-web-b\n');
    assert.equal(await httpGet('127.0.0.1', pa), 'hello-web-a\n', 'node → 127.0.0.1:hostPort of a');
    assert.equal(await httpGet('127.0.0.1', pb), 'hello-web-b\n', 'node → 127.0.0.1:hostPort of b');

    // A third container fetches b's page by address and prints it.
    await st.runtime.create(webRequest('client', [], `until wget -q -T 2 -O - http://${b.ip}/; do sleep 0.2; done; exec sleep 100000`));
    await st.runtime.start('default/client');
    await waitFor("the client to print b's page", async () => (await st.runtime.logs('default/client')).includes('hello-web-b'), { timeoutMs: 20_000 });

    // /etc of a bridge container: its name and address, a resolver it can reach.
    const hosts = await readFile(`/proc/${a.pid}/root/etc/hosts`, 'utf8');
    assert.match(hosts, new RegExp(`^${a.ip.replace(/\./g, '\\.')}\\tweb-a$`, 'm'));
    assert.equal((await readFile(`/proc/${a.pid}/root/etc/hostname`, 'utf8')).trim(), 'web-a');
    const resolv = await readFile(`/proc/${a.pid}/root/etc/resolv.conf`, 'utf8');
    assert.match(resolv, /^nameserver \S+$/m);
    assert.doesNotMatch(resolv, /^nameserver 127\./m, "no loopback resolver: it would be the container's own lo");

    // Destroy a: nothing of it is left, b is untouched.
    const leaseCount = (await snapshotNetworkLeaks(st.dir, n)).leases.length;
    await st.runtime.remove('default/web-a', { keepPrivateArea: false });
    const left = await snapshotNetworkLeaks(st.dir, n);
    assert.ok(!left.netns.includes('default_web-a'), 'its namespace is gone');
    assert.ok(!left.leases.includes(a.ip), 'its lease is released');
    assert.equal(left.leases.length, leaseCount - 1);
    assert.ok(!left.iptables.some((r) => r.includes(`"default_web-a"`) || r.includes(`${a.ip}/32`)), `no rule of a: ${left.iptables.join('\n')}`);
    assert.equal(left.veths.length, 2, 'the veths of b and client only');
    assert.equal(await httpGet('127.0.0.1', pa), undefined, "a's port is gone");
    assert.equal(await httpGet('127.0.0.1', pb), 'hello-web-b\n', 'b still answers');
    assert.ok(isAlive(b.pid));
  });

  it("an address given again reaches its new container at once: the node's entry naming an earlier holder's MAC is dropped", async () => {
    const a = await startWeb('first');
    const prefix = a.ip.split('.').slice(0, 3).join('.');
    // The entries an earlier holder of the next addresses left on the node (permanent: never corrected by the kernel on its own).
    const stale = '02:00:00:00:0b:ad';
    for (let i = 2; i <= 12; i++) {
      if (`${prefix}.${i}` !== a.ip) await exec('ip', ['neigh', 'replace', `${prefix}.${i}`, 'lladdr', stale, 'dev', n.bridge, 'nud', 'permanent']);
    }
    const b = await startWeb('second');
    assert.equal(await waitFor(() => httpGet(b.ip, 80), { timeoutMs: 5_000 }), 'hello-second\n', 'reached at its own address');
    const entry = (await exec('ip', ['neigh', 'show', b.ip, 'dev', n.bridge])).stdout;
    assert.doesNotMatch(entry, new RegExp(stale), `the node's entry: ${entry}`);
    assert.match(entry, /lladdr/);
    // Another container's entry is left as it was.
    const other = `${prefix}.12`;
    if (other !== b.ip) assert.match((await exec('ip', ['neigh', 'show', other, 'dev', n.bridge])).stdout, new RegExp(stale));
  });

  it('a stopped and started container keeps its address (its namespace persists); a changed port is published in place, same pid', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const a = await startWeb('web', p1);
    await st.runtime.stop('default/web', { graceSeconds: 0 });
    const again = await st.runtime.start('default/web');
    assert.notEqual(again.pid, a.pid);
    assert.equal((await st.runtime.get('default/web'))?.network?.ip, a.ip, 'same address after a restart');
    await waitFor(() => httpGet('127.0.0.1', p1));

    // The manifest now says p2: the plan is an in-place ports change.
    const req = webRequest('web', published(p2));
    const actual = (await st.runtime.get('default/web'))!;
    const p = plan({ desired: new Map([['default/web', desiredOf(req)]]), actual: new Map([['default/web', actual]]), complete: true });
    // The old port released first, then the new one claimed (plan/network.ts).
    assert.deepEqual(
      p.actions.map((x) => x.kind),
      ['ports', 'ports'],
    );
    assert.match(p.actions[0]!.reason, new RegExp(`127\\.0\\.0\\.1:${p1}→80/TCP released first \\(in place\\), then 127\\.0\\.0\\.1:${p2}→80/TCP claimed`));
    for (const x of p.actions) await executeAction(x, { runtime: st.runtime });
    const after = (await st.runtime.get('default/web'))!;
    assert.equal(after.process.pid, again.pid, 'same pid');
    assert.equal(after.network?.ip, a.ip, 'same address');
    assert.equal(await httpGet('127.0.0.1', p2), 'hello-web\n', 'the new port answers');
    assert.equal(await httpGet('127.0.0.1', p1), undefined, 'the old one no longer does');

    // Network mode none → bridge is a replace, and the plan says so.
    const none = webRequest('web', []);
    none.spec = { ...none.spec, network: 'none' };
    const p3 = plan({ desired: new Map([['default/web', desiredOf(none)]]), actual: new Map([['default/web', after]]), complete: true });
    assert.equal(p3.actions[0]?.kind, 'replace');
    assert.match(p3.actions[0]!.reason, /network bridge → none/);
  });

  /** A repair's pause and hold as an acetate that died in the repair (or could not end them) leaves them. */
  async function leaveRepair(name: string, pid: number): Promise<string> {
    await exec('runc', ['--root', st.runtime.paths.runcRoot, 'pause', `default_${name}`]);
    const hold = newHoldName();
    await writeFile(`${st.runtime.paths.runContainersDir}/default_${name}/paused-for-repair`, `${JSON.stringify({ pid, holds: [hold] })}\n`);
    await holdFrames(netnsOfPid(pid), hold);
    return hold;
  }

  /** The one action plan makes of the container's network problem (which must match). */
  async function repairOf(name: string, problem: RegExp) {
    const actual = (await st.runtime.get(`default/${name}`))!;
    assert.match(actual.network?.problem ?? '', problem);
    const p = plan({ desired: new Map([[`default/${name}`, desiredOf(webRequest(name))]]), actual: new Map([[`default/${name}`, actual]]), complete: true });
    assert.deepEqual(
      p.actions.map((x) => x.kind),
      ['network'],
    );
    return p.actions[0]!;
  }

  it("a repair's pause and hold left by an acetate that died in it are not ended by a read (the new port may not be walled yet) but by the repair it plans, or by the next start", async () => {
    const a = await startWeb('paused');
    const freezer = await freezerStateFile(a.pid);
    const marker = `${st.runtime.paths.runContainersDir}/default_paused/paused-for-repair`;
    await leaveRepair('paused', a.pid);
    const action = await repairOf('paused', /an interrupted repair left it paused, its frames held/);
    assert.equal((await readFile(freezer, 'utf8')).trim(), 'FROZEN', 'a read leaves it paused');
    await executeAction(action, { runtime: st.runtime });
    assert.equal((await readFile(freezer, 'utf8')).trim(), 'THAWED');
    assert.deepEqual(await holdsIn(netnsOfPid(a.pid)), [], 'its frames flow again');
    assert.equal(await waitFor(() => httpGet(a.ip, 80)), 'hello-paused\n');
    assert.ok(!existsSync(marker));
    assert.equal((await st.runtime.get('default/paused'))?.process.pid, a.pid);

    // Stopped while held (its namespace, and the hold in it, persist): the next start releases it.
    await leaveRepair('paused', a.pid);
    await st.runtime.stop('default/paused', { graceSeconds: 0 });
    const again = await st.runtime.start('default/paused');
    assert.deepEqual(await holdsIn(netnsOfPid(again.pid)), []);
    assert.equal(await waitFor(() => httpGet(a.ip, 80)), 'hello-paused\n');
    assert.ok(!existsSync(marker));

    // Left paused with a long grace period: the stop resumes it first, so its SIGTERM ends it (a
    // frozen process takes no signal: it waited the whole grace, then was SIGKILLed, 137).
    await leaveRepair('paused', again.pid);
    const stopped = await st.runtime.stop('default/paused', { graceSeconds: 60 });
    assert.equal(stopped.exitCode, 143, 'ended by its SIGTERM, not by the SIGKILL after the grace');
    // Resumed, the left repair is ended whole: no hold left for a tenant to empty while it ran, no marker.
    assert.deepEqual(await holdsIn(`${st.runtime.paths.runDir}/netns/default_paused`), []);
    assert.ok(!existsSync(marker));
    // And a destroy of one left so leaves nothing of it in the run dir (the marker went too).
    const third = await st.runtime.start('default/paused');
    await leaveRepair('paused', third.pid);
    await st.runtime.remove('default/paused', { keepPrivateArea: false });
    assert.ok(!existsSync(`${st.runtime.paths.runContainersDir}/default_paused`), 'its run dir is gone');
  });

  it('a failed repair resumes the container only when no port of it is left unwalled; a left hold is reused; else it stays paused and held until a repair ends it', async () => {
    const a = await startWeb('held');
    const freezer = await freezerStateFile(a.pid);
    const marker = `${st.runtime.paths.runContainersDir}/default_held/paused-for-repair`;
    const frozen = async () => (await readFile(freezer, 'utf8')).trim();
    // Fault injection: a tool that fails, first in PATH (nsenter runs nft by PATH too).
    const faulty = path.join(st.dir, 'faulty-bin');
    await mkdir(faulty);
    const realPath = process.env.PATH;
    const failing = async (tool: string) => {
      await rm(faulty, { recursive: true, force: true });
      await mkdir(faulty);
      await writeFile(path.join(faulty, tool), `#!/bin/sh\necho "${tool}: injected failure" >&2\nexit 1\n`, { mode: 0o755 });
      process.env.PATH = `${faulty}:${realPath}`;
    };
    const working = () => (process.env.PATH = realPath);
    try {
      // No hold could be made (nft fails), and no port of it is on the bridge (its veth deleted): resumed as it was.
      await exec('ip', ['link', 'del', (await snapshotNetworkLeaks(st.dir, n)).veths[0]!]);
      const action = await repairOf('held', /veth .* is gone/);
      await failing('nft');
      await assert.rejects(executeAction(action, { runtime: st.runtime }), /nft: injected failure/);
      assert.equal(await frozen(), 'THAWED', 'no port unwalled: not left paused');
      assert.ok(!existsSync(marker));
      working();

      // An interrupted repair left it paused and held, with a port on the bridge the walls do not know
      // (as an ADD killed half way leaves it). Nothing can be told (nsenter fails): it stays paused and held.
      const hold = await leaveRepair('held', a.pid);
      const orphan = `vo${process.pid % 100_000}`;
      await exec('ip', ['link', 'add', orphan, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(a.pid)]);
      await exec('ip', ['link', 'set', orphan, 'master', n.bridge, 'up']);
      await failing('nsenter');
      const again = await repairOf('held', /an interrupted repair left it paused/);
      assert.equal((await st.runtime.list()).length, 1, 'the list is not failed by it');
      await assert.rejects(executeAction(again, { runtime: st.runtime }), /left paused and held/);
      assert.equal(await frozen(), 'FROZEN');
      working();
      assert.deepEqual(await unwalledPortsInto(netnsOfPid(a.pid), n.bridge), [orphan]);
      assert.ok((await holdsIn(netnsOfPid(a.pid))).includes(hold), 'its hold stays');

      // The next repair reuses the hold in place (no second one), replaces the orphan by a walled port, then resumes.
      await executeAction(await repairOf('held', /an interrupted repair left it paused/), { runtime: st.runtime });
      assert.equal(await frozen(), 'THAWED');
      assert.deepEqual(await holdsIn(netnsOfPid(a.pid)), []);
      assert.deepEqual(await unwalledPortsInto(netnsOfPid(a.pid), n.bridge), []);
      assert.ok(!existsSync(`/sys/class/net/${orphan}`), 'the orphan port is gone');
      assert.ok(!existsSync(marker));
      assert.equal((await st.runtime.get('default/held'))?.network?.problem, undefined);
      assert.equal(await waitFor(() => httpGet(a.ip, 80)), 'hello-held\n', 'same pid, same address, its network back');
      assert.ok(isAlive(a.pid));

      // Left paused and held again with an unwalled port: a stop does not resume it (it would run
      // through its grace with that port); it is SIGKILLed frozen, at once (a frozen process takes
      // no SIGTERM: its grace would be waited for nothing), and never runs again.
      // A writer in it shows whether it ran again: a line per turn, into its private area.
      await st.runtime.exec('default/held', { command: ['sh', '-c', 'while :; do echo x; done >>/etc/turns 2>/dev/null &'], stdio: 'capture' });
      const turns = path.join(st.runtime.paths.containersDir, 'default_held', 'upper', 'etc', 'turns');
      await waitFor(async () => ((await stat(turns).catch(() => undefined))?.size ?? 0) > 0, { what: 'the writer writing' });
      await leaveRepair('held', a.pid);
      await exec('ip', ['link', 'add', orphan, 'type', 'veth', 'peer', 'name', 'eth9', 'netns', String(a.pid)]);
      await exec('ip', ['link', 'set', orphan, 'master', n.bridge, 'up']);
      const frozenSize = (await stat(turns)).size;
      const t0 = Date.now();
      assert.equal((await st.runtime.stop('default/held', { graceSeconds: 60 })).exitCode, 137, 'ended by a SIGKILL');
      assert.ok(Date.now() - t0 < 10_000, `stopped in ${Date.now() - t0} ms, not after its 60 s grace`);
      assert.equal((await stat(turns)).size, frozenSize, 'it never ran again while a port of it was unwalled');
    } finally {
      working();
    }
  });

  it('a veth, a port rule or the namespace file removed by hand is found and repaired in place: same pid, same address', async () => {
    const port = await freePort();
    const a = await startWeb('web', port);
    await waitFor(() => httpGet('127.0.0.1', port));
    const repair = async (what: RegExp) => {
      const actual = (await st.runtime.get('default/web'))!;
      assert.match(actual.network?.problem ?? '', what);
      const p = plan({
        desired: new Map([['default/web', desiredOf(webRequest('web', published(port)))]]),
        actual: new Map([['default/web', actual]]),
        complete: true,
      });
      assert.deepEqual(
        p.actions.map((x) => x.kind),
        ['network'],
      );
      // Paused while the repair runs (a new veth is not walled yet), running again after it.
      const freezer = await freezerStateFile(a.pid);
      const seen = new Set<string>();
      let held = false;
      let repairing = true;
      const sampling = (async () => {
        while (repairing) {
          seen.add((await readFile(freezer, 'utf8')).trim());
          await new Promise((r) => setTimeout(r, 2));
        }
      })();
      // And its kernel's frames held (a second sampler: an nsenter takes some milliseconds).
      const holdSampling = (async () => {
        while (repairing) if ((await holdsIn(netnsOfPid(a.pid)).catch(() => [])).length) held = true;
      })();
      await executeAction(p.actions[0]!, { runtime: st.runtime }).finally(() => (repairing = false));
      await Promise.all([sampling, holdSampling]);
      assert.ok(seen.has('FROZEN'), `the container was paused during the repair: ${[...seen].join(', ')}`);
      assert.ok(held, "the container's frames were held during the repair");
      assert.equal((await readFile(freezer, 'utf8')).trim(), 'THAWED');
      assert.deepEqual(await holdsIn(netnsOfPid(a.pid)), [], 'and released after it');
      assert.ok(!existsSync(`${st.runtime.paths.runContainersDir}/default_web/paused-for-repair`));
      const after = (await st.runtime.get('default/web'))!;
      assert.equal(after.network?.problem, undefined);
      assert.equal(after.process.pid, a.pid);
      assert.equal(after.network?.ip, a.ip);
      assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-web\n');
      assert.equal(await httpGet(a.ip, 80), 'hello-web\n');
    };
    const veth = (await snapshotNetworkLeaks(st.dir, n)).veths[0]!;
    await exec('ip', ['link', 'del', veth]);
    await repair(/veth .* is gone/);

    const { stdout } = await exec('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']);
    // This test's rule: by its port too (a suite beside it, in another worker, may run a default_web of its own).
    const ownPort = new RegExp(`--dports (?:\\S*,)?${port}(?:,|\\s)`);
    const rule = stdout.split('\n').find((l) => l.includes('id: \\"default_web\\"') && ownPort.test(l))!;
    await exec('iptables', [
      '-w',
      '-t',
      'nat',
      ...rule
        .replace(/^-A /, '-D ')
        .match(/"(?:[^"\\]|\\.)*"|\S+/g)!
        .map((x) => (x.startsWith('"') ? x.slice(1, -1).replace(/\\"/g, '"') : x)),
    ]);
    await repair(/port rules of .* missing/);

    // The namespace file unmounted by hand: bound again from the process, and nothing else changes.
    await exec('umount', [`${st.runtime.paths.runDir}/netns/default_web`]);
    await repair(/network namespace .* is gone/);

    // The bridge deleted by hand (its ports are left, on no bridge): made again, the port on it.
    await exec('ip', ['link', 'del', n.bridge]);
    await repair(/bridge .* is gone/);
  });

  it('garbage collection: what a container whose record is gone left (lease, rules, namespace, claim) is removed by the next acetate', async () => {
    const port = await freePort();
    const a = await startWeb('orphan', port);
    await startWeb('kept', await freePort());
    // As if acetate died while the container was being removed: process gone, record gone.
    const conmon = Number(await readFile(`${st.runtime.paths.runContainersDir}/default_orphan/conmon.pid`, 'utf8'));
    for (const pid of [a.pid, conmon]) process.kill(pid, 'SIGKILL');
    await waitFor(() => !isAlive(a.pid) && !isAlive(conmon));
    await exec('runc', ['--root', st.runtime.paths.runcRoot, 'delete', '--force', 'default_orphan']);
    await rm(`${st.runtime.paths.containersDir}/default_orphan`, { recursive: true, force: true });
    const before = await snapshotNetworkLeaks(st.dir, n);
    assert.ok(before.netns.includes('default_orphan') && before.leases.includes(a.ip));

    // And a pair acetate was killed while making: an owner bound, the network file still empty.
    const ghost = netnsPathOf(st.runtime.paths.runDir, 'default_ghost');
    await createNetns(ghost, { hostID: 1_320_000_000, size: 65536 });
    await exec('umount', [ghost]);
    const fresh = makeRuntime(st.dir, { network: n });
    assert.deepEqual(
      (await fresh.list()).map((c) => c.name),
      ['kept'],
    );
    const after = await snapshotNetworkLeaks(st.dir, n);
    assert.deepEqual(after.netns, ['default_kept']);
    assert.deepEqual(after.userns, [], 'the ghost pair is gone, its owner unmounted');
    assert.ok(!after.leases.includes(a.ip), 'the lease is released');
    assert.equal(after.veths.length, 1);
    assert.deepEqual(
      after.iptables.filter((r) => r.includes('default_orphan') || r.includes(`${a.ip}/32`)),
      [],
    );
    assert.equal(await httpGet('127.0.0.1', port), undefined);
    await rm(`${st.runtime.paths.runContainersDir}/default_orphan`, { recursive: true, force: true });
  });

  it('a host port claimed twice: the second is not started, the first untouched; a port in use on the node is refused', async () => {
    const port = await freePort();
    const a = await startWeb('first', port);
    await waitFor(() => httpGet('127.0.0.1', port));
    await st.runtime.create(webRequest('second', [{ containerPort: 80, hostPort: port, protocol: 'TCP' }])); // 0.0.0.0 overlaps 127.0.0.1
    await assert.rejects(st.runtime.start('default/second'), (err: Error) => {
      assert.equal((err as NetworkError).reason, 'PortConflict', err.message);
      assert.match(err.message, new RegExp(`${port}/TCP is already published by default/first`));
      return true;
    });
    const second = await st.runtime.get('default/second');
    assert.equal(second?.process.state, 'absent');
    assert.equal(second?.network, undefined, 'no half-configured namespace');
    assert.deepEqual((await snapshotNetworkLeaks(st.dir, n)).netns, ['default_first']);
    assert.equal(await httpGet('127.0.0.1', port), 'hello-first\n', 'the first still answers');
    assert.equal((await st.runtime.get('default/first'))?.process.pid, a.pid);

    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen({ host: '127.0.0.1', port: 0 }, r));
    try {
      const used = (busy.address() as net.AddressInfo).port;
      await st.runtime.create(webRequest('third', published(used)));
      await assert.rejects(st.runtime.start('default/third'), (err: Error) => {
        assert.equal((err as NetworkError).reason, 'PortInUse', err.message);
        return true;
      });
    } finally {
      busy.close();
    }
  });
});

describe('network: bridge, a full subnet (real CNI plugins)', function () {
  this.timeout(120_000);
  let st: TmpState;
  let n: TestNetwork;
  before(async () => {
    const base = await testNetwork();
    n = { bridge: base.bridge, subnet: base.subnet.replace(/\.0\/24$/, '.0/29') };
    st = await tmpState(undefined, { network: n });
  });
  after(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  it('the container after the last address fails with SubnetFull and leaves nothing; the others run', async () => {
    // A /29: .1 is the gateway, .2–.6 the five addresses.
    for (let i = 0; i < 5; i++) {
      await st.runtime.create(webRequest(`c${i}`, [], 'exec sleep 100000'));
      await st.runtime.start(`default/c${i}`);
    }
    await st.runtime.create(webRequest('c5', [], 'exec sleep 100000'));
    await assert.rejects(st.runtime.start('default/c5'), (err: Error) => {
      assert.equal((err as NetworkError).reason, 'SubnetFull', err.message);
      assert.match(err.message, new RegExp(`no address left for default/c5 in ${n.subnet.replace(/\./g, '\\.')}`));
      return true;
    });
    const leaks = await snapshotNetworkLeaks(st.dir, n);
    assert.equal(leaks.netns.length, 5, 'no namespace of c5');
    assert.equal(leaks.leases.length, 5);
    assert.equal(leaks.veths.length, 5);
    // The five running containers' ports stay enrolled in the bridge's address check; no other one.
    const walls = leaks.walls.filter((w) => !leaks.veths.some((v) => w === `port ${v}`));
    assert.deepEqual(
      networkProblems({ ...leaks, netns: [], userns: [], leases: [], veths: [], iptables: leaks.iptables.filter((r) => r.includes('default_c5')), walls }),
      [],
    );
  });
});
