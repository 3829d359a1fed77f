/**
 * Network checks before anything is done (issue 21): node network flags (reserved ranges, size,
 * the node's routes), a hostIP that is not a node address, a change of the node network planned
 * from its facts, and a broken network as news for the process poll.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { nodeNetworkFlagProblem, overlappingRoute, parseSubnet } from '../../src/runtime/network/node-config.js';
import { readNodeRoutes } from '../../src/runtime/network/node-routes.js';
import { liveNodeAddresses, unassignableHostIP } from '../../src/sources/node-addresses.js';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import { ProcessPoll } from '../../src/controller/process-poll.js';
import type { NodeNetworkFacts } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

const routes = [
  { dev: 'eth0', dst: '0.0.0.0/0' },
  { dev: 'eth0', dst: '192.0.2.0/24' },
  { dev: 'acetate0', dst: '10.90.0.0/16' },
];

describe('network checks: node network flags', () => {
  it('refuses reserved, too small, too large and malformed subnets, naming the flag or variable', () => {
    const p = (subnet: string, env: NodeJS.ProcessEnv = {}) => nodeNetworkFlagProblem({ subnet }, env, routes);
    assert.match(p('abc')!, /^--network-subnet: subnet 'abc' is not an IPv4 CIDR/);
    assert.match(p('10.0.0.0/33')!, /a prefix length is at most \/32/);
    assert.match(p('10.0.0.0/30')!, /is too small: a \/30 leaves 1 address\(es\) for containers/);
    assert.match(p('10.0.0.0/7')!, /is too large/);
    assert.match(p('127.0.0.0/16')!, /overlaps 127\.0\.0\.0\/8, the node's loopback/);
    assert.match(p('0.0.0.0/8')!, /overlaps 0\.0\.0\.0\/8/);
    assert.match(p('224.1.0.0/16')!, /multicast/);
    assert.match(p('255.255.255.248/29')!, /broadcast address 255\.255\.255\.255/);
    assert.match(p('169.254.0.0/16')!, /link-local/);
    assert.equal(p('10.91.0.0/16'), undefined);
    assert.equal(nodeNetworkFlagProblem({}, { ACETATE_NETWORK_SUBNET: 'x' }, routes)?.startsWith('ACETATE_NETWORK_SUBNET: '), true);
    assert.equal(nodeNetworkFlagProblem({}, {}, routes), undefined, 'no flag: nothing to check (the record or the defaults)');
    assert.match(nodeNetworkFlagProblem({ bridge: 'x'.repeat(16) }, {}, routes)!, /^--network-bridge: 'x+' is not an interface name/);
  });

  it("refuses a subnet that meets a node route, but for the default route and the bridge's own", () => {
    assert.match(nodeNetworkFlagProblem({ subnet: '192.0.2.128/25' }, {}, routes)!, /overlaps the node's route 192\.0\.2\.0\/24 dev eth0/);
    assert.match(nodeNetworkFlagProblem({ subnet: '192.0.0.0/16' }, {}, routes)!, /route 192\.0\.2\.0\/24/, 'a larger subnet meets it too');
    assert.equal(nodeNetworkFlagProblem({ subnet: '10.90.0.0/16' }, {}, routes), undefined, 'its own bridge route');
    assert.match(
      nodeNetworkFlagProblem({ subnet: '10.90.0.0/16', bridge: 'other0' }, {}, routes)!,
      /route 10\.90\.0\.0\/16 dev acetate0/,
      'the same subnet on another bridge',
    );
    assert.equal(overlappingRoute('10.91.0.0/16', 'acetate0', routes), undefined);
    assert.equal(parseSubnet('10.90.0.0/16').gateway, '10.90.0.1');
  });

  it('reads /proc/net/route (little-endian hex, up routes only)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-routes-'));
    try {
      const file = path.join(dir, 'route');
      await writeFile(
        file,
        'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
          'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n' +
          'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
          'br0\t00005A0A\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n',
      );
      assert.deepEqual(readNodeRoutes(file), [
        { dev: 'eth0', dst: '0.0.0.0/0' },
        { dev: 'eth0', dst: '192.0.2.0/24' },
      ]);
      assert.deepEqual(readNodeRoutes(path.join(dir, 'none')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('network checks: hostIP', () => {
  const node = { addresses: ['127.0.0.1', '192.0.2.2', '::1'], localRanges: ['127.0.0.1/8'] };
  const withIP = (hostIP: string) => desired('web', { network: 'bridge', ports: [{ containerPort: 80, hostPort: 8080, hostIP }] });
  it('a published port listens only on an address of the node (Docker: cannot assign requested address)', () => {
    for (const ip of ['10.1.2.3', '255.255.255.255', '224.0.0.1']) {
      const bad = unassignableHostIP(withIP(ip), node);
      assert.equal(bad?.index, 0, ip);
      assert.match(bad!.message, new RegExp(`^${ip.replace(/\./g, '\\.')} is not an address of this node: cannot assign requested address`));
    }
    for (const ip of ['127.0.0.1', '127.0.0.2', '192.0.2.2', '0.0.0.0']) assert.equal(unassignableHostIP(withIP(ip), node), undefined, ip);
    const second = desired('web', {
      network: 'bridge',
      ports: [
        { containerPort: 80, hostPort: 8080 },
        { containerPort: 81, hostPort: 8081, hostIP: '10.1.2.3' },
      ],
    });
    assert.equal(unassignableHostIP(second, node)?.index, 1);
  });
});

describe('network checks: the node addresses a long-running process sees', () => {
  it('read again once a second old (or with the clock set back), the last look kept when the read fails', () => {
    let now = 1_000_000;
    let reads = 0;
    let fail = false;
    let current = ['127.0.0.1'];
    const live = liveNodeAddresses(
      () => now,
      () => {
        reads++;
        if (fail) throw Object.assign(new Error('getifaddrs'), { code: 'EMFILE' });
        return { addresses: [...current], localRanges: ['127.0.0.1/8'] };
      },
    );
    assert.deepEqual(live().addresses, ['127.0.0.1']);
    current = ['127.0.0.1', '10.90.0.1']; // the loop's own bridge comes up
    now += 999;
    assert.deepEqual(live().addresses, ['127.0.0.1'], 'within the second: the same look');
    now += 1;
    assert.deepEqual(live().addresses, ['127.0.0.1', '10.90.0.1'], 'a second old: read again');
    assert.equal(reads, 2);
    now -= 5_000;
    live();
    assert.equal(reads, 3, 'a clock set back reads again');
    fail = true;
    now += 10_000;
    assert.deepEqual(live().addresses, ['127.0.0.1', '10.90.0.1'], 'a failed read: the last look stands');
    const first = liveNodeAddresses(
      () => now,
      () => {
        throw new Error('getifaddrs');
      },
    );
    assert.deepEqual(first().localRanges, ['127.0.0.1/8'], 'no look yet: loopback only, nothing thrown');
  });
});

describe('network checks: a change of the node network in plan', () => {
  const a = desired('a', { network: 'bridge' });
  const b = desired('b', { network: 'bridge' });
  const none = desired('plain');
  const facts = (holders: string[]): NodeNetworkFacts => ({
    wanted: { bridge: 'acetate0', subnet: '10.91.0.0/16' },
    recorded: { bridge: 'acetate0', subnet: '10.90.0.0/16' },
    holders,
  });
  const input = (network: NodeNetworkFacts | undefined, gone = false) => ({
    desired: new Map([
      [a.key, a],
      [b.key, b],
      [none.key, none],
    ]),
    actual: new Map([[a.key, actualFrom(a)], ...(gone ? [['default/old', { ...actualFrom(desired('old', { network: 'bridge' })) }] as const] : [])]),
    complete: true,
    ...(network ? { network } : {}),
  });

  it('refused while containers hold addresses: bridge containers left alone, others planned, destroys go ahead', () => {
    const p = plan(input(facts(['default/a', 'default/old']), true));
    assert.equal(p.network?.refused, true);
    assert.match(
      p.network!.message,
      /^node network: subnet 10\.90\.0\.0\/16 → 10\.91\.0\.0\/16 refused: 2 container\(s\) hold addresses on the old one \(default\/a, default\/old\)/,
    );
    assert.match(p.network!.message, /keep --network-bridge acetate0 --network-subnet 10\.90\.0\.0\/16/);
    assert.deepEqual(
      p.skipped.map((s) => s.key),
      ['default/a', 'default/b'],
    );
    assert.deepEqual(
      p.actions.map((x) => `${x.kind} ${x.key}`),
      ['destroy default/old', 'create default/plain'],
    );
    assert.match(renderPlan(p), /! node network: subnet .* refused/);
  });

  it('said in words when nobody holds an address; nothing when it does not change', () => {
    const p = plan(input(facts([])));
    assert.equal(p.network?.refused, false);
    assert.match(p.network!.message, /no container holds an address on the old one/);
    assert.ok(p.actions.some((x) => x.key === 'default/b' && x.kind === 'create'));
    assert.match(renderPlan(p), /~ node network: subnet 10\.90\.0\.0\/16 → 10\.91\.0\.0\/16 \(no container/);
    const same = plan(input({ wanted: { bridge: 'acetate0', subnet: '10.90.0.0/16' }, recorded: { bridge: 'acetate0', subnet: '10.90.0.0/16' }, holders: [] }));
    assert.equal(same.network, undefined);
    assert.equal(plan(input(undefined)).network, undefined);
  });

  it('create and start reasons say what is missing', () => {
    const p = plan({ desired: new Map([[b.key, b]]), actual: new Map(), complete: true });
    assert.match(p.actions[0]!.reason, /^not created yet/);
    const started = plan({ desired: new Map([[a.key, a]]), actual: new Map([[a.key, actualFrom(a, { state: 'absent' })]]), complete: true });
    assert.equal(started.actions[0]!.reason, 'desired Running, created, not started yet');
    const stopped = desired('a', { network: 'bridge', state: 'Stopped' });
    const again = plan({ desired: new Map([[a.key, a]]), actual: new Map([[a.key, actualFrom(a, { state: 'absent' }, stopped.spec)]]), complete: true });
    assert.equal(again.actions[0]!.reason, 'desired Running, stopped');
  });
});

describe('network checks: the process poll', () => {
  it('a network found broken (and then repaired) is news, like a process change', () => {
    const a = actualFrom(desired('a', { network: 'bridge' }));
    const poll = new ProcessPoll();
    poll.changed([a]);
    assert.deepEqual(poll.changed([a]), []);
    const broken = { ...a, network: { ...a.network!, problem: 'veth veth1 of 10.90.0.2 is gone' } };
    assert.deepEqual(poll.changed([broken]), ['default/a']);
    assert.deepEqual(poll.changed([broken]), []);
    assert.deepEqual(poll.changed([a]), ['default/a']);
  });

  it('broken again right after the loop repaired it (between two polls) is news once the loop has forgotten the key', () => {
    const a = actualFrom(desired('a', { network: 'bridge' }));
    const rules = { ...a, network: { ...a.network!, problem: 'port rules of 8080/TCP are missing' } };
    const bridge = { ...a, network: { ...a.network!, problem: 'bridge br0 is gone' } };
    const poll = new ProcessPoll();
    poll.changed([a]);
    assert.deepEqual(poll.changed([rules]), ['default/a']);
    // Repaired (the loop acted on it), then the bridge deleted before the next poll: broken both times.
    poll.forget('default/a');
    assert.deepEqual(poll.changed([bridge]), ['default/a']);
    assert.deepEqual(poll.changed([bridge]), [], 'not news while nothing acts on it (the queue retries a failed repair)');
  });
});
