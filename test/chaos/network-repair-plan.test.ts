/**
 * network: bridge through the real CLI, issue 21 items 7, 10, 11, 12: network flags and hostIPs
 * refused with clear errors and nothing written; a veth, a DNAT rule and the bridge deleted under
 * `acetate run` come back with the same address, pid and MAC, noticed by the process poll (the
 * resync is 5 minutes here); a new --network-subnet with live containers is shown and refused by
 * plan and apply, the node's network record kept; a PortInUse failure of apply stays visible in
 * get and describe with no `run` alive.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { describeRecord } from '../support/describe-record.js';
import { CliProcess } from '../support/cli-process.js';
import { testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { bridgeWebManifest, freePort, httpGet } from '../support/network-test.js';
import { cliDirs, type CliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { exec } from '../../src/util/exec.js';

/** Line 14 is the hostIP's. */
const web = (name: string, hostPort: number, hostIP = '127.0.0.1'): string => bridgeWebManifest(name, hostPort, { hostIP });

const ID = 'default_web-a';

describe('network: bridge flags, repairs, subnet changes and failures after apply (real CNI plugins)', function () {
  this.timeout(240_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let n: TestNetwork;
  let env: NodeJS.ProcessEnv;
  let run: CliProcess | undefined;

  // The deep check keeps its default period (60 s): what brings a repair in seconds is the poll.
  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, { stateDir, env: { ...env, ...extraEnv } });
  const describeJson = (name: string) => describeRecord(name, { stateDir, env });
  const networkJson = async (): Promise<{ ip: string; hostVeth: string; netns: string }> =>
    JSON.parse(await readFile(path.join(instancePaths(stateDir).containersDir, ID, 'network.json'), 'utf8')) as { ip: string; hostVeth: string; netns: string };
  /** The MAC of eth0 inside the container's namespace, as the kernel has it. */
  const macInside = async (netns: string) => (await exec('nsenter', [`--net=${netns}`, 'cat', '/sys/class/net/eth0/address'])).stdout.trim();

  before(async () => {
    n = await testNetwork();
    ({ stateDir, dir } = dirs = await cliDirs({ network: n }));
    env = { ACETATE_NETWORK_BRIDGE: n.bridge, ACETATE_NETWORK_SUBNET: n.subnet };
  });
  after(async () => {
    await run?.stop('SIGKILL');
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('refuses bad network flags and hostIPs with a clear message, writing nothing', async () => {
    const fresh = path.join(await mkdtemp(path.join(os.tmpdir(), 'acetate-netflags-')), 'state');
    const m = await mkdtemp(path.join(os.tmpdir(), 'acetate-netflags-m-'));
    try {
      await writeFile(path.join(m, 'a.yaml'), web('web-a', await freePort()));
      const route = (await exec('ip', ['-4', 'route', 'show'])).stdout
        .split('\n')
        .map((l) => l.split(' ')[0]!)
        .find((d) => d && d !== 'default' && d.includes('/') && !d.startsWith('10.'))!;
      const cases: [string, RegExp][] = [
        ['abc', /--network-subnet: subnet 'abc' is not an IPv4 CIDR/],
        ['10.9.0.0/33', /--network-subnet: subnet '10\.9\.0\.0\/33': a prefix length is at most \/32/],
        ['10.9.0.0/30', /--network-subnet: subnet '10\.9\.0\.0\/30' is too small: a \/30 leaves 1 address/],
        ['127.0.0.0/16', /overlaps 127\.0\.0\.0\/8, the node's loopback/],
        ['0.0.0.0/8', /overlaps 0\.0\.0\.0\/8, "this network"/],
        ['224.0.0.0/8', /overlaps 224\.0\.0\.0\/4, multicast/],
        ['255.255.255.255/32', /overlaps 240\.0\.0\.0\/4, reserved addresses and the broadcast address/],
      ];
      if (route) cases.push([route, new RegExp(`overlaps the node's route ${route.replace(/\./g, '\\.')} dev \\S+`)]);
      const commands = [
        ['validate', m],
        ['plan', '-f', m],
        ['apply', '-f', m],
        ['run', '-f', m],
      ];
      for (const [i, [subnet, message]] of cases.entries()) {
        // Every command for the first; one each, in turn, for the rest (each costs a CLI start).
        for (const args of i === 0 ? commands : [commands[i % commands.length]!]) {
          const r = await runCli(['--network-subnet', subnet, ...args], { stateDir: fresh });
          assert.equal(r.code, 1, `${subnet} ${args[0]}: ${r.stdout}`);
          assert.match(r.stderr, message, `${subnet} ${args[0]}`);
          assert.doesNotMatch(r.stderr, /CNI/);
        }
      }
      const fromEnv = await runCli(['plan', '-f', m], { stateDir: fresh, env: { ACETATE_NETWORK_SUBNET: '127.0.0.0/16' } });
      assert.equal(fromEnv.code, 1);
      assert.match(fromEnv.stderr, /ACETATE_NETWORK_SUBNET: subnet '127\.0\.0\.0\/16' overlaps/);
      const badBridge = await runCli(['--network-bridge', 'a/b', 'plan', '-f', m], { stateDir: fresh });
      assert.match(badBridge.stderr, /--network-bridge: 'a\/b' is not an interface name/);
      assert.equal(existsSync(fresh), false, 'bad flags write nothing: not even the state dir');

      const byIp = [
        ['10.1.2.3', ['validate', m]],
        ['255.255.255.255', ['plan', '-f', m]],
        ['224.0.0.1', ['apply', '-f', m]],
      ] as const;
      for (const [ip, args] of byIp) {
        await writeFile(path.join(m, 'a.yaml'), web('web-a', await freePort(), ip));
        const r = await runCli([...args], { stateDir: fresh, env });
        assert.equal(r.code, 1, `${ip} ${args[0]}: ${r.stdout}`);
        const file = path.join(m, 'a.yaml').replace(/[.]/g, '\\.');
        assert.match(
          r.stderr,
          new RegExp(`${file}:14: spec\\.ports\\[0\\]\\.hostIP: ${ip.replace(/\./g, '\\.')} is not an address of this node: cannot assign requested address`),
        );
      }
      // The node's own addresses are fine (the loopback range binds as a whole).
      await writeFile(path.join(m, 'a.yaml'), web('web-a', await freePort(), '127.0.0.2'));
      assert.equal((await runCli(['validate', m], { stateDir: fresh })).code, 0);
      // apply took the node lock (its dirs), but created nothing and recorded no network.
      assert.equal(existsSync(path.join(fresh, 'containers', 'default_web-a')), false, 'no container');
      assert.equal(existsSync(path.join(fresh, 'network')), false, 'no network record, lease or claim');
    } finally {
      await rm(path.dirname(fresh), { recursive: true, force: true });
      await rm(m, { recursive: true, force: true });
    }
  });

  it('acetate run: a deleted veth, DNAT rule or bridge is back with the same address, pid and MAC, and the port answers', async () => {
    const port = await freePort();
    await writeFile(path.join(dir, 'a.yaml'), web('web-a', port));
    // A 5 minute resync: only the 2 s process poll (the default) can notice in the times below.
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '127.0.0.1:0', '--resync', '5m'], { stateDir, env: { ...env, ACETATE_BACKOFF_BASE_MS: '200' } });
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port), { timeoutMs: 60_000 }), 'hello-web-a\n');
    const first = await networkJson();
    const pid = (await describeJson('web-a')).actual!.pid!;
    const mac = await macInside(first.netns);
    // The node talks to it directly first: its neighbour entry holds the MAC a repair must keep.
    assert.equal(await waitFor(() => httpGet(first.ip, 80)), 'hello-web-a\n');

    const repaired = async (what: string, breakIt: () => Promise<void>): Promise<number> => {
      await breakIt();
      const t0 = performance.now();
      await waitFor(async () => (await httpGet('127.0.0.1', port)) === 'hello-web-a\n' && (await httpGet(first.ip, 80)) === 'hello-web-a\n', {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      const ms = Math.round(performance.now() - t0);
      // The repair writes network.json right after the plugins' ADD that made the port answer.
      const now = await waitFor(() => networkJson().catch(() => undefined));
      assert.equal(now.ip, first.ip, `${what}: same address`);
      assert.equal(await macInside(now.netns), mac, `${what}: same MAC`);
      assert.equal((await describeJson('web-a')).actual?.pid, pid, `${what}: same pid`);
      console.log(`      ${what}: answering again after ${ms} ms`);
      return ms;
    };

    try {
      await repaired('veth deleted', () => exec('ip', ['link', 'del', first.hostVeth]).then(() => undefined));
      const rules = (await exec('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'])).stdout.split('\n').filter((l) => l.includes(`id: \\"${ID}\\"`));
      assert.ok(rules.length, 'the DNAT rule of the port exists');
      await repaired('DNAT rule deleted', async () => {
        for (const r of rules) await exec('sh', ['-c', `iptables -w -t nat ${r.replace(/^-A /, '-D ')}`]);
        assert.equal(await httpGet('127.0.0.1', port), undefined, 'the port is dead without its rule');
      });
      await repaired('bridge deleted', () => exec('ip', ['link', 'del', n.bridge]).then(() => undefined));
    } finally {
      await run.stop(); // SIGTERM: the container lives on
    }
  });

  it('a new --network-subnet with live containers is shown and refused by plan and apply; the node network record is kept', async () => {
    const nodeJson = path.join(stateDir, 'network', 'node.json');
    const before = await readFile(nodeJson, 'utf8');
    assert.deepEqual(JSON.parse(before), { bridge: n.bridge, subnet: n.subnet });
    const other = await testNetwork();
    const port = await freePort();
    await writeFile(path.join(dir, 'b.yaml'), web('web-b', port));
    const pid = (await describeJson('web-a')).actual!.pid!;

    const planned = await cli(['--network-subnet', other.subnet, 'plan', '-f', dir]);
    assert.equal(planned.code, 1, planned.stdout + planned.stderr);
    const change = `subnet ${n.subnet} → ${other.subnet}`.replace(/\./g, '\\.');
    assert.match(planned.stdout, new RegExp(`! node network: ${change} refused: 1 container\\(s\\) hold addresses on the old one \\(default/web-a\\)`));
    assert.match(planned.stdout, /keep --network-bridge \S+ --network-subnet /);
    assert.match(planned.stdout, /left alone default\/web-a: node network .* refused/);
    assert.match(planned.stdout, /left alone default\/web-b: node network .* refused/);

    const applied = await cli(['--network-subnet', other.subnet, 'apply', '-f', dir]);
    assert.equal(applied.code, 1, applied.stdout);
    assert.match(applied.stderr, /node network: .* refused/);
    assert.doesNotMatch(applied.stdout + applied.stderr, /CNI/, 'no raw plugin error');
    assert.equal(await readFile(nodeJson, 'utf8'), before, 'the record is not overwritten');
    assert.equal((await cli(['get', 'web-b'])).code, 1, 'web-b was not created');
    const a = await describeJson('web-a');
    assert.equal(a.actual?.pid, pid, 'web-a untouched');
    assert.equal(await httpGet((await networkJson()).ip, 80), 'hello-web-a\n');

    // The same subnet as recorded: no change to show, web-b is created.
    const same = await cli(['apply', '-f', dir]);
    assert.equal(same.code, 0, same.stdout + same.stderr);
    assert.doesNotMatch(same.stdout, /node network/);
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port), { timeoutMs: 20_000 }), 'hello-web-b\n');
    await rm(path.join(dir, 'b.yaml'));
    assert.equal((await cli(['apply', '-f', dir])).code, 0);
  });

  it('a PortInUse failure of apply shows in get and describe with no run alive; plan says what is missing', async () => {
    const port = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port }, resolve));
    try {
      await writeFile(path.join(dir, 'c.yaml'), web('web-c', port));
      const applied = await cli(['apply', '-f', dir]);
      assert.equal(applied.code, 1, applied.stdout);
      assert.match(applied.stdout, /\+ create\s+default\/web-c\s+.*: not created yet/);
      const got = await cli(['get', 'web-c']);
      assert.match(got.stdout, /web-c\s+Pending .*PortInUse: 127\.0\.0\.1:\d+→80\/TCP of default\/web-c/);
      const described = await cli(['describe', 'web-c']);
      assert.match(described.stdout, /Last error:\s+.*127\.0\.0\.1:\d+\/TCP is in use on the node/);
      const planned = await cli(['plan', '-f', dir]);
      assert.match(planned.stdout, /start\s+default\/web-c\s+desired Running, created, not started yet/);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    // Once the port is free, apply starts it and the error is gone from the record.
    const again = await cli(['apply', '-f', dir]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port), { timeoutMs: 20_000 }), 'hello-web-c\n');
    const described = await describeJson('web-c');
    assert.equal(described.lastError, undefined);
    await rm(path.join(dir, 'a.yaml'));
    await rm(path.join(dir, 'c.yaml'));
    assert.equal((await cli(['apply', '-f', dir, '--allow-empty'])).code, 0);
  });
});
