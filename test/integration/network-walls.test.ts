/**
 * The walls around bridge containers, tried from inside real containers on a test bridge as a
 * hostile tenant would: frames crafted on an AF_PACKET socket (test/support/raw-frames.ts, a
 * container given NET_RAW with capabilities.add) to the node's 127.0.0.1 listeners and claiming a
 * neighbour's address. Traffic goes only to 127.0.0.1 listeners this test binds, to the test
 * bridge's own address and to the test's containers.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import type { NormalizedSpec } from '../../src/api/types.js';
import { executeAction } from '../../src/apply/execute.js';
import { plan } from '../../src/plan/plan.js';
import { parseSubnet } from '../../src/runtime/network/node-config.js';
import { exec } from '../../src/util/exec.js';
import { listEnrolled, wallsTable } from '../../src/runtime/network/walls.js';
import { testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { freePort, httpGet, published, webRequest } from '../support/network-test.js';
import { rawFramesCommand } from '../support/raw-frames.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { tmpState, type TmpState } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

const NET_RAW_BIT = 1n << 13n;

describe('network walls (real containers, crafted frames)', function () {
  this.timeout(120_000);
  let st: TmpState;
  let n: TestNetwork;
  let gateway: string;
  const closers: (() => void)[] = [];
  beforeEach(async () => {
    n = await testNetwork();
    gateway = parseSubnet(n.subnet).gateway;
    st = await tmpState(undefined, { network: n });
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await st.cleanupAndAssertNoLeaks();
  });

  async function run(name: string, command: string[], spec: Partial<NormalizedSpec> = {}): Promise<{ pid: number; ip: string }> {
    await st.runtime.create({ namespace: 'default', name, spec: testSpec({ command, network: 'bridge', ...spec }), source: FILE_SOURCE });
    const { pid } = await st.runtime.start(`default/${name}`);
    const ip = (await st.runtime.get(`default/${name}`))?.network?.ip;
    assert.ok(ip, `${name} has an address`);
    return { pid, ip };
  }

  const withNetRaw = { security: { privileged: false, noNewPrivileges: true, capAdd: ['CAP_NET_RAW'], capDrop: [] } };

  async function capEff(pid: number): Promise<bigint> {
    const line = (await readFile(`/proc/${pid}/status`, 'utf8')).split('\n').find((l) => l.startsWith('CapEff:'))!;
    return BigInt(`0x${line.split(/\s+/)[1]}`);
  }

  async function logsOf(name: string, until = 'done'): Promise<string> {
    return waitFor(`${name} to print ${until}`, async () => {
      const out = await st.runtime.logs(`default/${name}`);
      return out.includes(until) ? out : undefined;
    });
  }

  async function udpListener(host: string): Promise<{ port: number; got: string[] }> {
    const sock = dgram.createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (m) => got.push(m.toString()));
    await new Promise<void>((r) => sock.bind({ address: host, port: 0 }, r));
    closers.push(() => sock.close());
    return { port: sock.address().port, got };
  }

  async function tcpListener(host: string): Promise<{ port: number; accepted: () => number }> {
    let accepted = 0;
    const srv = net.createServer((c) => {
      accepted++;
      c.destroy();
    });
    await new Promise<void>((r) => srv.listen({ host, port: 0 }, r));
    closers.push(() => srv.close());
    return { port: (srv.address() as net.AddressInfo).port, accepted: () => accepted };
  }

  const bridgeMac = async (): Promise<string> => (await readFile(`/sys/class/net/${n.bridge}/address`, 'utf8')).trim();

  it('NET_RAW is not in the default set: CapEff lacks it and a packet socket is refused; capabilities.add: [NET_RAW] gives both', async () => {
    const plain = await run('plain', rawFramesCommand('probe'));
    const raw = await run('raw', rawFramesCommand('probe'), withNetRaw);
    assert.equal((await capEff(plain.pid)) & NET_RAW_BIT, 0n, 'no NET_RAW by default');
    assert.equal((await capEff(raw.pid)) & NET_RAW_BIT, NET_RAW_BIT, 'NET_RAW when added');
    assert.match(await logsOf('plain'), /^packet-socket EPERM$/m);
    assert.match(await logsOf('raw'), /^packet-socket ok$/m);
  });

  it("frames to the node's 127.0.0.1 reach nothing (UDP datagram, TCP SYN), the same frames to the bridge's address do; hostIP 127.0.0.1 still serves the node", async () => {
    const port = await freePort();
    await st.runtime.create(webRequest('web', published(port)));
    await st.runtime.start('default/web');
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-web\n', 'the node reaches a port published on 127.0.0.1');
    const route = (await readFile(`/proc/sys/net/ipv4/conf/${n.bridge}/route_localnet`, 'utf8')).trim();
    assert.equal(route, '1', 'portmap opened route_localnet on the bridge: the wall is what stops the frames');

    const [udpLo, tcpLo, udpCtl, tcpCtl] = [
      await udpListener('127.0.0.1'),
      await tcpListener('127.0.0.1'),
      await udpListener(gateway),
      await tcpListener(gateway),
    ];
    await run('tenant', rawFramesCommand('loopback', [await bridgeMac(), gateway, udpLo.port, tcpLo.port, udpCtl.port, tcpCtl.port]), withNetRaw);
    const out = await logsOf('tenant');
    // The control frames went the same way after the loopback ones: they arrived, so the others would have.
    await waitFor('the control datagram at the bridge address', () => udpCtl.got.includes('control'));
    assert.deepEqual(udpLo.got, [], "no datagram reached the node's 127.0.0.1 listener");
    assert.match(out, new RegExp(`^synack ${gateway.replace(/\./g, '\\.')}:${tcpCtl.port}$`, 'm'), `the control SYN was answered: ${out}`);
    assert.doesNotMatch(out, /^synack 127\./m, "no SYN-ACK from the node's 127.0.0.1 listener");
    assert.equal(tcpLo.accepted(), 0);
    assert.equal(await httpGet('127.0.0.1', port), 'hello-web\n', 'publishing on 127.0.0.1 still works for the node');
  });

  it("ARP and NDP claiming a neighbour's address, its MAC, its address as IPv4 source, VLAN-tagged frames (VID 0 too): all dropped at the port; the node's neighbour entry and the neighbour's port unchanged", async () => {
    const port = await freePort();
    await st.runtime.create(webRequest('victim', published(port)));
    const { pid } = await st.runtime.start('default/victim');
    const victim = (await st.runtime.get('default/victim'))!.network!;
    assert.equal(await waitFor(() => httpGet(victim.ip!, 80)), 'hello-victim\n');
    const link = (await exec('nsenter', [`--net=${victim.netnsPath}`, 'ip', '-o', 'link', 'show', 'eth0'])).stdout;
    const victimMac = /link\/ether ([0-9a-f:]{17})/.exec(link)![1]!;
    const neigh = async () => (await exec('ip', ['neigh', 'show', victim.ip!, 'dev', n.bridge])).stdout.trim();
    assert.match(await neigh(), new RegExp(`lladdr ${victimMac}`), 'the node knows the victim by its MAC');
    const dropped = async () =>
      [...(await exec('nft', ['list', 'chain', 'bridge', wallsTable(n.bridge), 'ports'])).stdout.matchAll(/counter packets (\d+)/g)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );

    const ctl = await udpListener(gateway);
    const tenant = await run('tenant', rawFramesCommand('spoof', [await bridgeMac(), gateway, victim.ip!, victimMac, ctl.port]), withNetRaw);
    const out = await logsOf('tenant');
    await waitFor('the legitimate datagram after the spoofed frames', () => ctl.got.includes('legit'));
    const sent = Number(/^sent (\d+)$/m.exec(out)?.[1]);
    assert.ok(sent > 0, out);
    assert.match(await neigh(), new RegExp(`lladdr ${victimMac}`), `the node's entry still has the victim's MAC: ${await neigh()}`);
    assert.ok(!ctl.got.includes('spoofed'), "a datagram with the victim's source address did not arrive");
    assert.ok(
      !ctl.got.includes('vlan0') && !ctl.got.includes('vlan5'),
      `no VLAN-tagged datagram arrived, priority-tagged VID 0 included: ${ctl.got.join(',')}`,
    );
    // The chain's counters start at 0 when the tenant's port is enrolled (walls.ts enrollPort writes
    // the chain again, rules and counters, in the same nft transaction as the port): every frame the
    // tenant sent since is counted, its own IPv6 autoconfiguration frames too (dropped: not IPv4/ARP).
    // A count taken before the tenant's create would be of the old counters (CI saw 43 from 2 for 42).
    assert.ok((await dropped()) >= sent, `all ${sent} frames dropped at the tenant's port (counter ${await dropped()})`);
    const tenantMac = (await readFile(`/proc/${tenant.pid}/root/sys/class/net/eth0/address`, 'utf8').catch(() => '')).trim();
    const v6 = (await exec('ip', ['-6', 'neigh', 'show', 'dev', n.bridge])).stdout;
    if (tenantMac) assert.ok(!v6.includes(tenantMac), `no IPv6 neighbour entry points at the tenant: ${v6}`);
    assert.equal(await httpGet('127.0.0.1', port), 'hello-victim\n', "the neighbour's published port still answers");
    assert.equal(await httpGet(victim.ip!, 80), 'hello-victim\n');
    assert.equal((await st.runtime.get('default/victim'))?.process.pid, pid, 'the victim kept running');
  });

  it("walls removed by hand (a table deleted, a port's entry deleted) are found by the deep check and put back in place: same pid, same address", async () => {
    const port = await freePort();
    const req = webRequest('web', published(port));
    await st.runtime.create(req);
    const { pid } = await st.runtime.start('default/web');
    const ip = (await st.runtime.get('default/web'))!.network!.ip!;
    const repair = async (what: RegExp) => {
      const actual = (await st.runtime.get('default/web'))!;
      assert.match(actual.network?.problem ?? '', what);
      const desired = { key: 'default/web', namespace: 'default', name: 'web', spec: req.spec, source: req.source };
      const p = plan({ desired: new Map([['default/web', desired]]), actual: new Map([['default/web', actual]]), complete: true });
      assert.deepEqual(
        p.actions.map((x) => x.kind),
        ['network'],
      );
      await executeAction(p.actions[0]!, { runtime: st.runtime });
      const after = (await st.runtime.get('default/web'))!;
      assert.equal(after.network?.problem, undefined);
      assert.equal(after.process.pid, pid);
      assert.equal(after.network?.ip, ip);
      const enrolled = (await listEnrolled(n.bridge)).ports;
      assert.ok(
        enrolled.length === 1 && existsSync(`/sys/class/net/${n.bridge}/brif/${enrolled[0]}`),
        `its veth is the one port enrolled: ${enrolled.join(', ')}`,
      );
      assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-web\n');
    };
    await exec('nft', ['delete', 'table', 'ip', wallsTable(n.bridge)]);
    await repair(/loopback wall of bridge .* is missing/);
    assert.match((await exec('nft', ['list', 'chain', 'ip', wallsTable(n.bridge), 'loopback'])).stdout, /127\.0\.0\.0\/8/);
    const [veth] = (await listEnrolled(n.bridge)).ports;
    await exec('nft', ['delete', 'element', 'bridge', wallsTable(n.bridge), 'ports', `{ "${veth}" }`]);
    await repair(/is not enrolled in the address check/);
    assert.equal((await listEnrolled(n.bridge)).ports.length, 1, 'one port enrolled: the old one pruned');
  });

  it('/etc/hosts, /etc/resolv.conf and /etc/hostname are read-only: a 100 MB write fails at once and the node-side files stay small', async () => {
    const script = [
      'for f in /etc/hosts /etc/resolv.conf /etc/hostname; do',
      '  r=$( { head -c 104857600 /dev/zero >> $f; } 2>&1 ); echo "$f rc=$? $r"',
      'done; echo done; exec sleep 1000000',
    ].join('\n');
    await run('filler', ['/bin/sh', '-c', script], { resources: { memoryBytes: 32 * 1024 * 1024 } });
    const out = await logsOf('filler');
    for (const f of ['/etc/hosts', '/etc/resolv.conf', '/etc/hostname']) assert.match(out, new RegExp(`^${f} rc=[1-9]\\d* .*Read-only file system`, 'm'), out);
    const dir = `${st.runtime.paths.runContainersDir}/default_filler`;
    const files = (await exec('find', [dir, '-name', 'hosts', '-o', '-name', 'resolv.conf', '-o', '-name', 'hostname'])).stdout
      .trim()
      .split('\n')
      .filter(Boolean);
    assert.equal(files.length, 3, `the three files in the run dir: ${files.join(', ')}`);
    for (const f of files) assert.ok((await stat(f)).size < 4096, `${f} stays small`);
  });
});
