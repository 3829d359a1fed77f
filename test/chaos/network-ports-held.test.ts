/**
 * Published host ports, seen from the node: held open while published (a node process that binds
 * one later gets EADDRINUSE, TCP and UDP), free again after a change or a destroy; the tracked
 * flows of a removed mapping deleted (a UDP sender that keeps sending stops reaching the
 * container at the change); two containers swapping host ports in one edit converge in one
 * `acetate apply` and under `acetate run`. Real CNI plugins, a bridge and a /24 of this test's own;
 * traffic only to 127.0.0.1.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { executeAction } from '../../src/apply/execute.js';
import { plan } from '../../src/plan/plan.js';
import type { DesiredContainer, PublishedPort } from '../../src/api/types.js';
import { exec } from '../../src/util/exec.js';
import { findProcessesByCmdline } from '../../src/util/processes.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { testNetwork, networkEnv, snapshotNetworkLeaks, type TestNetwork } from '../support/network-leaks.js';
import { NetworkError } from '../../src/runtime/network/driver.js';
import { bridgeWebManifest, freePort, httpGet, webRequest } from '../support/network-test.js';
import { tmpState, makeRuntime, cliDirs, type CliDirs, type TmpState } from '../support/tmp-state.js';
import { unmountAll } from '../../src/util/mounts.js';
import { waitFor } from '../support/wait.js';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';

function desiredOf(req: ReturnType<typeof webRequest>): DesiredContainer {
  return { key: `${req.namespace}/${req.name}`, namespace: req.namespace, name: req.name, spec: req.spec, source: req.source };
}

/** The errno of binding host:port the way a node process would (SO_REUSEADDR, as most servers set). */
async function bindError(protocol: 'TCP' | 'UDP', host: string, port: number): Promise<string | undefined> {
  if (protocol === 'UDP') {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    return new Promise((resolve) => {
      s.once('error', (err: NodeJS.ErrnoException) => {
        s.close();
        resolve(err.code);
      });
      s.bind({ address: host, port }, () => s.close(() => resolve(undefined)));
    });
  }
  const srv = net.createServer();
  return new Promise((resolve) => {
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
    srv.listen({ host, port }, () => srv.close(() => resolve(undefined)));
  });
}

describe('network: published host ports held, flows ended, swaps converge (real CNI plugins)', function () {
  this.timeout(180_000);
  let st: TmpState;
  let n: TestNetwork;
  beforeEach(async () => {
    n = await testNetwork();
    st = await tmpState(undefined, { network: n });
  });
  afterEach(async () => {
    await st.cleanupAndAssertNoLeaks();
  });

  it('a node process binding a published hostIP:hostPort gets EADDRINUSE (TCP and UDP); a port dropped in place and, after destroy, every port is free', async () => {
    const [pt, pu, pt2] = [await freePort(), await freePort(), await freePort()];
    const ports: PublishedPort[] = [
      { name: 'http', containerPort: 80, hostPort: pt, hostIP: '127.0.0.1', protocol: 'TCP' },
      { name: 'dns', containerPort: 53, hostPort: pu, protocol: 'UDP' },
    ];
    await st.runtime.create(webRequest('held', ports));
    const { pid } = await st.runtime.start('default/held');
    assert.equal(await waitFor(() => httpGet('127.0.0.1', pt)), 'hello-held\n', 'the published port answers');
    assert.equal(await bindError('TCP', '127.0.0.1', pt), 'EADDRINUSE', 'TCP on the published hostIP');
    assert.equal(await bindError('TCP', '0.0.0.0', pt), 'EADDRINUSE', 'TCP on 0.0.0.0 (overlaps the hostIP)');
    assert.equal(await bindError('UDP', '0.0.0.0', pu), 'EADDRINUSE', 'UDP on 0.0.0.0');
    assert.equal(await bindError('UDP', '127.0.0.1', pu), 'EADDRINUSE', 'UDP on 127.0.0.1 (0.0.0.0 is published)');
    const holders = await findProcessesByCmdline(`acetate-port-holder:${st.dir}`);
    assert.equal(holders.length, 2, `one holder per port: ${holders.map((h) => h.cmdline).join('; ')}`);
    // Beside the conmons, out of acetate's own cgroup (a restart of acetate.service keeps them).
    const cgroupParent = instancePaths(st.dir).cgroupParent;
    for (const h of holders) {
      const cg = await readFile(`/proc/${h.pid}/cgroup`, 'utf8');
      assert.match(cg, new RegExp(`:name=systemd:${cgroupParent}/conmon$`, 'm'), `holder ${h.pid} in the conmons' cgroup: ${cg}`);
    }

    // In place: the TCP port moves to pt2, the UDP one is dropped.
    const moved = webRequest('held', [{ ...ports[0]!, hostPort: pt2 }]);
    const actual = (await st.runtime.get('default/held'))!;
    const p = plan({ desired: new Map([['default/held', desiredOf(moved)]]), actual: new Map([['default/held', actual]]), complete: true });
    for (const x of p.actions) await executeAction(x, { runtime: st.runtime });
    assert.equal((await st.runtime.get('default/held'))?.process.pid, pid, 'same pid');
    assert.equal(await bindError('TCP', '127.0.0.1', pt), undefined, 'the old TCP port is free at once');
    assert.equal(await bindError('UDP', '0.0.0.0', pu), undefined, 'the dropped UDP port is free at once');
    assert.equal(await bindError('TCP', '127.0.0.1', pt2), 'EADDRINUSE', 'the new one is held');
    assert.equal(await httpGet('127.0.0.1', pt2), 'hello-held\n');

    await st.runtime.stop('default/held', { graceSeconds: 0 });
    assert.equal(await bindError('TCP', '127.0.0.1', pt2), 'EADDRINUSE', 'held while stopped: the network (and its ports) stay until removal');
    await st.runtime.remove('default/held', { keepPrivateArea: false });
    assert.equal(await bindError('TCP', '127.0.0.1', pt2), undefined, 'free after destroy');
    assert.deepEqual(await findProcessesByCmdline(`acetate-port-holder:${st.dir}`), [], 'no holder left');
  });

  it('a holder killed by hand is found by the deep check and started again in place (same pid)', async () => {
    const port = await freePort();
    await st.runtime.create(webRequest('rehold', [{ name: 'http', containerPort: 80, hostPort: port, hostIP: '127.0.0.1', protocol: 'TCP' }]));
    const { pid } = await st.runtime.start('default/rehold');
    const [holder] = await findProcessesByCmdline(`acetate-port-holder:${st.dir}`);
    process.kill(holder!.pid, 'SIGKILL');
    await waitFor(async () => (await bindError('TCP', '127.0.0.1', port)) === undefined, { timeoutMs: 5_000, what: 'the port free' });
    const seen = await waitFor(
      async () => {
        const a = await st.runtime.get('default/rehold');
        return a?.network?.problem ? a : undefined;
      },
      { timeoutMs: 10_000, what: 'the deep check to see the holder gone' },
    );
    assert.match(seen.network!.problem!, /host ports not held open: tcp_127\.0\.0\.1_\d+ \(holder process gone\)/);
    const p = plan({
      desired: new Map([['default/rehold', desiredOf(webRequest('rehold', seen.applied.spec.ports))]]),
      actual: new Map([['default/rehold', seen]]),
      complete: true,
    });
    assert.deepEqual(
      p.actions.map((x) => x.kind),
      ['network'],
    );
    for (const x of p.actions) await executeAction(x, { runtime: st.runtime });
    assert.equal(await bindError('TCP', '127.0.0.1', port), 'EADDRINUSE', 'held again');
    assert.equal((await st.runtime.get('default/rehold'))?.process.pid, pid, 'same pid');
  });

  it('garbage collection: rules whose container left nothing else (a DEL killed half way, then the record lost) and a holder no claim names are removed by the next acetate', async () => {
    const port = await freePort();
    await st.runtime.create(webRequest('orphan', [{ name: 'http', containerPort: 80, hostPort: port, hostIP: '127.0.0.1', protocol: 'TCP' }]));
    await st.runtime.start('default/orphan');
    await st.runtime.create(webRequest('kept'));
    await st.runtime.start('default/kept');
    const orphan = (await st.runtime.get('default/orphan'))!;
    const ip = orphan.network!.ip!;
    const paths = st.runtime.paths;
    // What the bridge plugin's DEL killed before its iptables step leaves: no lease, no veth; then
    // acetate killed before the rest: the process, namespace, network.json and record gone too.
    await st.runtime.stop('default/orphan', { graceSeconds: 0 });
    const net = JSON.parse(await readFile(`${paths.containersDir}/default_orphan/network.json`, 'utf8')) as { hostVeth: string };
    await exec('ip', ['link', 'del', net.hostVeth]);
    await rm(path.join(st.dir, 'network', 'leases', `acetate-${paths.instanceHash}`, ip));
    await unmountAll(path.join(paths.runDir, 'netns', 'default_orphan'));
    await rm(path.join(paths.runDir, 'netns', 'default_orphan'), { force: true });
    await exec('runc', ['--root', paths.runcRoot, 'delete', '--force', 'default_orphan']).catch(() => undefined);
    await rm(`${paths.containersDir}/default_orphan`, { recursive: true, force: true });
    await rm(`${paths.runContainersDir}/default_orphan`, { recursive: true, force: true });
    // The claim file lost too: its holder is named by nothing.
    await rm(path.join(st.dir, 'network', 'ports', `tcp_127.0.0.1_${port}`));
    const mine = (r: string) => r.includes('"default_orphan"') || r.includes(`${ip}/32`);
    const before = await snapshotNetworkLeaks(st.dir, n);
    assert.ok(before.iptables.filter((r) => r.startsWith('nat:') && mine(r)).length > 0, 'nat rules left');
    assert.ok(before.iptables.filter((r) => r.startsWith('filter:') && mine(r)).length > 0, 'filter rules left');
    assert.equal(await bindError('TCP', '127.0.0.1', port), 'EADDRINUSE', 'still held by the stray holder');

    const fresh = makeRuntime(st.dir, { network: n });
    assert.deepEqual(
      (await fresh.list()).map((c) => c.name),
      ['kept'],
    );
    assert.deepEqual((await snapshotNetworkLeaks(st.dir, n)).iptables.filter(mine), [], 'no rule of the orphan in nat or filter');
    assert.equal(await bindError('TCP', '127.0.0.1', port), undefined, 'the stray holder is ended');
  });

  it('a UDP flow to a port removed in place stops reaching the container at the change (its tracked flow deleted)', async () => {
    const port = await freePort();
    // A UDP receiver printing every datagram to its log.
    const script = `exec ${process.execPath} -e 'require("dgram").createSocket("udp4").on("message", (m) => console.log("got " + m)).bind(5000)'`;
    const udp: PublishedPort = { name: 'u', containerPort: 5000, hostPort: port, hostIP: '127.0.0.1', protocol: 'UDP' };
    const keep: PublishedPort = { name: 'keep', containerPort: 80, hostPort: await freePort(), hostIP: '127.0.0.1', protocol: 'TCP' };
    await st.runtime.create(webRequest('udp', [udp, keep], script));
    await st.runtime.start('default/udp');
    const ip = (await st.runtime.get('default/udp'))!.network!.ip!;
    // One sender, one source port: one flow, as a client that keeps sending.
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((r) => sender.bind(0, '127.0.0.1', r));
    const send = (m: string) => new Promise<void>((r) => sender.send(m, port, '127.0.0.1', () => r()));
    try {
      let seq = 0;
      await waitFor(
        async () => {
          await send(`before-${++seq}`);
          return (await st.runtime.logs('default/udp')).includes('got before-');
        },
        { timeoutMs: 20_000, what: 'the flow to reach the container' },
      );
      const flows = async () =>
        (await exec('conntrack', ['-L', '-p', 'udp', '--orig-port-dst', String(port), '--reply-src', ip]).catch(() => ({ stdout: '' }))).stdout;
      assert.match(await flows(), new RegExp(`dport=${port}`), 'the flow is tracked, DNATed to the container');

      const moved = webRequest('udp', [keep], script);
      const actual = (await st.runtime.get('default/udp'))!;
      const p = plan({ desired: new Map([['default/udp', desiredOf(moved)]]), actual: new Map([['default/udp', actual]]), complete: true });
      for (const x of p.actions) await executeAction(x, { runtime: st.runtime });
      for (let i = 1; i <= 20; i++) await send(`after-${i}`);
      // The receiver still runs and still logs: a datagram to its address arrives, the late ones never did.
      const direct = dgram.createSocket('udp4');
      try {
        await waitFor(
          async () => {
            await new Promise<void>((r) => direct.send('direct', 5000, ip, () => r()));
            return (await st.runtime.logs('default/udp')).includes('got direct');
          },
          { timeoutMs: 10_000, what: 'a datagram to the address' },
        );
      } finally {
        direct.close();
      }
      assert.doesNotMatch(await st.runtime.logs('default/udp'), /got after-/, 'no datagram sent after the change arrived');
      assert.doesNotMatch(await flows(), new RegExp(`dport=${port}`), 'no flow of the sender DNATed to the container any more');
    } finally {
      sender.close();
    }
  });
});

const web = (name: string, hostPort: number): string => bridgeWebManifest(name, hostPort, { gracePeriodSeconds: 0 });

describe('network: two containers swap host ports in one edit (real CNI plugins, CLI)', function () {
  this.timeout(180_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let n: TestNetwork;
  let env: NodeJS.ProcessEnv;
  let run: CliProcess | undefined;
  before(async () => {
    n = await testNetwork();
    ({ stateDir, dir } = dirs = await cliDirs({ network: n }));
    env = networkEnv(n);
  });
  after(async () => {
    await run?.stop('SIGKILL');
    await dirs.cleanupAndAssertNoLeaks();
  });
  const write = async (pa: number, pb: number) => {
    await writeFile(path.join(dir, 'a.yaml'), web('swap-a', pa));
    await writeFile(path.join(dir, 'b.yaml'), web('swap-b', pb));
  };
  const answers = async (pa: number, pb: number) =>
    (await httpGet('127.0.0.1', pa)) === 'hello-swap-a\n' && (await httpGet('127.0.0.1', pb)) === 'hello-swap-b\n';

  it('one `acetate apply` converges a swap, then `acetate run` converges the swap back without waiting out a back-off', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    await write(p1, p2);
    let r = await runCli(['apply', '-f', dir], { stateDir, env });
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => answers(p1, p2), { timeoutMs: 20_000, what: 'a on p1, b on p2' });

    await write(p2, p1);
    const planned = await runCli(['plan', '-f', dir], { stateDir, env });
    assert.match(planned.stdout, new RegExp(`~ ports\\s+default/swap-a\\s+ports 127\\.0\\.0\\.1:${p1}→80/TCP released first`));
    r = await runCli(['apply', '-f', dir], { stateDir, env });
    assert.equal(r.code, 0, `one apply converges the swap:\n${r.stderr}\n${r.stdout}`);
    assert.ok(await answers(p2, p1), 'a on p2, b on p1 right after the apply');
    const again = await runCli(['plan', '-f', dir], { stateDir, env });
    assert.match(again.stdout, /No changes/);

    // Under `acetate run` the two keys reconcile on their own: a back-off of 60 s would fail the wait.
    run = new CliProcess(['run', '-f', dir, ...quickRunFlags({ resync: '60s' })], { stateDir, env: { ...env, ACETATE_BACKOFF_BASE_MS: '60000' } });
    await waitFor(() => run!.logged(/ready/), { timeoutMs: 30_000, what: 'run ready' });
    await write(p1, p2);
    await waitFor(() => answers(p1, p2), { timeoutMs: 20_000, what: 'the swap back under acetate run' });
  });
});

describe('network: two acetate instances (two state dirs) on one node (real CNI plugins)', function () {
  this.timeout(180_000);
  let a: TmpState;
  let b: TmpState | undefined;
  let n: TestNetwork;
  let n2: TestNetwork;
  beforeEach(async () => {
    n = await testNetwork();
    n2 = await testNetwork();
    a = await tmpState(undefined, { network: n });
    b = undefined;
  });
  afterEach(async () => {
    await b?.cleanupAndAssertNoLeaks();
    await a.cleanupAndAssertNoLeaks();
  });

  it('a second instance on the same bridge is refused with one line naming the first, and leaves nothing; the first is untouched', async () => {
    const port = await freePort();
    await a.runtime.create(webRequest('first', [{ name: 'http', containerPort: 80, hostPort: port, hostIP: '127.0.0.1', protocol: 'TCP' }]));
    await a.runtime.start('default/first');
    const ipA = (await a.runtime.get('default/first'))!.network!.ip!;
    b = await tmpState(undefined, { network: n });
    await b.runtime.create(webRequest('second'));
    await assert.rejects(b.runtime.start('default/second'), (err: Error) => {
      assert.equal(err.message.split('\n').length, 1, 'one line');
      assert.match(err.message, new RegExp(`bridge ${n.bridge} belongs to the acetate instance of ${a.dir}`));
      return true;
    });
    const second = await b.runtime.get('default/second');
    assert.equal(second?.network, undefined, 'no address handed out');
    assert.deepEqual((await snapshotNetworkLeaks(b.dir, n)).leases, [], 'no lease in the second instance');
    assert.equal(await httpGet(ipA, 80), 'hello-first\n', 'the first still answers on its address');
    assert.equal(await httpGet('127.0.0.1', port), 'hello-first\n');
  });

  it('instances on two bridges cannot publish the same host port (the second gets PortInUse); destroying one leaves the other’s rules', async () => {
    const port = await freePort();
    await a.runtime.create(webRequest('first', [{ name: 'http', containerPort: 80, hostPort: port, protocol: 'TCP' }]));
    await a.runtime.start('default/first');
    const ipA = (await a.runtime.get('default/first'))!.network!.ip!;
    b = await tmpState(undefined, { network: n2 });
    await b.runtime.create(webRequest('second', [{ name: 'http', containerPort: 80, hostPort: port, hostIP: '127.0.0.1', protocol: 'TCP' }]));
    await assert.rejects(b.runtime.start('default/second'), (err: Error) => {
      assert.equal((err as NetworkError).reason, 'PortInUse', err.message);
      return true;
    });
    await b.runtime.create(webRequest('other'));
    await b.runtime.start('default/other');
    const rulesA = (await snapshotNetworkLeaks(a.dir, n)).iptables;
    await b.runtime.remove('default/other', { keepPrivateArea: false });
    assert.deepEqual((await snapshotNetworkLeaks(a.dir, n)).iptables, rulesA, "the first instance's rules are all there");
    assert.equal(await httpGet('127.0.0.1', port), 'hello-first\n');
    assert.equal(await httpGet(ipA, 80), 'hello-first\n');
  });
});
