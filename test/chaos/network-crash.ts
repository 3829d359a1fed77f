/**
 * Network crash trials: bridge containers with published ports, a random change (add, remove,
 * change a hostPort, switch none ↔ bridge), `acetate apply` SIGKILLed at a random moment, then
 * applied again; or a simulated reboot (processes gone, run dir and bridge gone) between two
 * applies. Afterwards, checked from the node: every declared bridge container answers on its
 * address and on 127.0.0.1:hostPort with its own name; bridge containers that stayed kept their
 * address; and nothing of any other container is left: network namespace, lease, veth, port
 * claim or iptables rule.
 */
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { unmountAll } from '../../src/util/mounts.js';
import { exec } from '../../src/util/exec.js';
import { assertNoLeaks, cleanupStateDir, snapshotLeaks } from '../support/leaks.js';
import { instanceRules, networkEnv, snapshotNetworkLeaks, testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { freePort, httpdScript, httpGet } from '../support/network-test.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { assertNoCrash, getAll, runCli, since, spawnCli, waitFor, type Rng } from './lib.js';
import { manifestHead } from '../support/manifest.js';

interface NetContainer {
  mode: 'bridge' | 'none';
  hostPort: number;
}

export interface NetSuite {
  stateDir: string;
  dir: string;
  network: TestNetwork;
  env: NodeJS.ProcessEnv;
  model: Map<string, NetContainer>;
  /** Address of each bridge container at the last check. */
  ips: Map<string, string>;
  fullApplyMs: number;
  /** How long the last apply of a change took (ms): the kills aim inside such an apply. */
  changeApplyMs: number;
  stats: { trials: number; kills: number; reboots: number; changes: number; leaks: number };
}

function manifest(name: string, c: NetContainer): string {
  return `${manifestHead(name)}  template: host
  command: ["/bin/sh", "-c", ${JSON.stringify(httpdScript(name))}]
  network: ${c.mode}
  terminationGracePeriodSeconds: 0
${c.mode === 'bridge' ? `  ports:\n    - { name: http, containerPort: 80, hostPort: ${c.hostPort}, hostIP: 127.0.0.1 }\n` : ''}`;
}

async function writeModel(s: NetSuite): Promise<void> {
  for (const f of await readdir(s.dir)) if (!s.model.has(f.replace(/\.yaml$/, ''))) await unlink(path.join(s.dir, f));
  for (const [name, c] of s.model) await writeFile(path.join(s.dir, `${name}.yaml`), manifest(name, c));
}

async function apply(s: NetSuite): Promise<void> {
  const r = await runCli(['apply', '-f', s.dir, '--concurrency', '4', '--allow-empty'], { stateDir: s.stateDir, env: s.env, timeoutMs: 300_000 });
  assertNoCrash(r, 'apply');
  assert.equal(r.code, 0, `apply failed:\n${r.stderr}\n${r.stdout.slice(-3000)}`);
}

export async function setupNetSuite(n: number): Promise<NetSuite> {
  const network = await testNetwork();
  const s: NetSuite = {
    stateDir: await makeTmpStateDir('acetate-netchaos-'),
    dir: await mkdtemp(path.join(os.tmpdir(), 'acetate-netchaos-m-')),
    network,
    env: networkEnv(network),
    model: new Map(),
    ips: new Map(),
    fullApplyMs: 0,
    changeApplyMs: 0,
    stats: { trials: 0, kills: 0, reboots: 0, changes: 0, leaks: 0 },
  };
  try {
    for (let i = 0; i < n; i++) s.model.set(`n${i}`, { mode: 'bridge', hostPort: await freePort() });
    await writeModel(s);
    const t0 = performance.now();
    await apply(s);
    s.fullApplyMs = since(t0);
    s.changeApplyMs = Math.round(s.fullApplyMs / 2);
    await checkNetwork(s, false);
    return s;
  } catch (err) {
    // The suite's after() never sees it: leave nothing (bridge, rules, containers) behind.
    await teardownNetSuite(s).catch(() => undefined);
    throw err;
  }
}

export async function teardownNetSuite(s: NetSuite | undefined): Promise<void> {
  if (!s) return;
  await cleanupStateDir(s.stateDir, { network: s.network });
  await assertNoLeaks(s.stateDir, { network: s.network, dirRemoved: true });
  await rm(s.dir, { recursive: true, force: true });
}

/** A random change: some removed, some added, some hostPorts changed, some modes switched. */
async function change(s: NetSuite, rng: Rng): Promise<void> {
  const names = [...s.model.keys()];
  for (const name of names) {
    const c = s.model.get(name)!;
    const r = rng.next();
    if (r < 0.15) s.model.delete(name);
    else if (r < 0.35) s.model.set(name, { ...c, hostPort: await freePort() });
    else if (r < 0.45) s.model.set(name, { ...c, mode: c.mode === 'bridge' ? 'none' : 'bridge' });
    else continue;
    s.stats.changes++;
  }
  for (let i = 0, k = rng.int(3); i < k; i++) {
    s.model.set(`n${names.length + rng.int(1000)}`, { mode: 'bridge', hostPort: await freePort() });
    s.stats.changes++;
  }
  await writeModel(s);
}

/** Everything that must hold after convergence (see the file comment). */
async function checkNetwork(s: NetSuite, keepAddresses: boolean): Promise<void> {
  const got = new Map((await getAll(s.stateDir, s.env)).map((c) => [c.name, c]));
  const bridge = [...s.model].filter(([, c]) => c.mode === 'bridge');
  assert.deepEqual([...got.keys()].sort(), [...s.model.keys()].sort(), 'the declared containers exist');
  for (const [name] of s.model) assert.equal(got.get(name)?.phase, 'Running', `${name} runs`);
  const next = new Map<string, string>();
  for (const [name, c] of bridge) {
    const ip = got.get(name)?.object.status?.ip;
    assert.ok(ip, `${name} has an address`);
    if (keepAddresses && s.ips.has(name)) assert.equal(ip, s.ips.get(name), `${name} kept its address`);
    next.set(name, ip);
    assert.equal(await waitFor(() => httpGet(ip, 80), { timeoutMs: 10_000, what: `${name} on ${ip}` }), `hello-${name}\n`);
    assert.equal(await waitFor(() => httpGet('127.0.0.1', c.hostPort), { timeoutMs: 10_000, what: `${name} on 127.0.0.1:${c.hostPort}` }), `hello-${name}\n`);
  }
  s.ips = next;
  const ids = new Set(bridge.map(([name]) => `default_${name}`));
  const ipSet = new Set(next.values());
  const leaks = await snapshotNetworkLeaks(s.stateDir, s.network);
  const problems: string[] = [];
  const extraNs = leaks.netns.filter((id) => !ids.has(id));
  if (extraNs.length || leaks.netns.length !== ids.size) problems.push(`namespaces ${leaks.netns.join(', ')} (want ${[...ids].join(', ')})`);
  // Owners only of the namespaces of live containers (none for node-id containers).
  const extraUserns = leaks.userns.filter((id) => !ids.has(id));
  if (extraUserns.length) problems.push(`user namespaces ${extraUserns.join(', ')} of no container`);
  const extraLeases = leaks.leases.filter((ip) => !ipSet.has(ip));
  if (extraLeases.length || leaks.leases.length !== ipSet.size) problems.push(`leases ${leaks.leases.join(', ')} (want ${[...ipSet].join(', ')})`);
  if (leaks.veths.length !== ids.size) problems.push(`${leaks.veths.length} veths on ${s.network.bridge} for ${ids.size} bridge containers`);
  for (const { rule } of await instanceRules(s.stateDir, s.network)) {
    const id = /id: \\"([^"\\]+)\\"/.exec(rule)?.[1];
    const prefix = s.network.subnet.split('.').slice(0, 3).join('.').replace(/\./g, '\\.');
    const addr = new RegExp(`(${prefix}\\.\\d+)(/32|:)`).exec(rule)?.[1];
    if ((id && !ids.has(id)) || (addr && !ipSet.has(addr))) problems.push(`iptables: ${rule}`);
  }
  const claims = await readdir(path.join(s.stateDir, 'network', 'ports')).catch(() => [] as string[]);
  const wantClaims = bridge.map(([, c]) => `tcp_127.0.0.1_${c.hostPort}`).sort();
  if (claims.sort().join() !== wantClaims.join()) problems.push(`port claims ${claims.join(', ')} (want ${wantClaims.join(', ')})`);
  s.stats.leaks += problems.length;
  assert.deepEqual(problems, [], 'nothing of removed containers is left');
}

export async function netCrashTrial(s: NetSuite, rng: Rng, t: number, log: (m: string) => void): Promise<void> {
  s.stats.trials++;
  await change(s, rng);
  // Within the time an apply of a change takes (the last one), so that most kills land mid-work.
  const killAfter = rng.int(Math.max(50, s.changeApplyMs));
  const tk = performance.now();
  const child = spawnCli(['apply', '-f', s.dir, '--concurrency', '4', '--allow-empty'], { stateDir: s.stateDir, env: s.env });
  const timer = setTimeout(() => child.child.kill('SIGKILL'), killAfter);
  const end = await child.exited;
  clearTimeout(timer);
  if (end.signal === 'SIGKILL') s.stats.kills++;
  log(`trial ${t}: ${s.model.size} declared, SIGKILL after ${killAfter} ms (${end.signal ?? `exit ${end.code}`})`);
  // An apply that ended before the kill: its duration is what the next kill aims inside.
  if (end.signal !== 'SIGKILL') s.changeApplyMs = since(tk);
  await apply(s);
  await checkNetwork(s, true);
}

/** Every process ends, the run dir (a tmpfs) and the bridge are gone; iptables rules and the state dir stay. */
export async function simulateReboot(s: NetSuite): Promise<void> {
  for (const p of (await snapshotLeaks(s.stateDir)).processes) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitFor(async () => (await snapshotLeaks(s.stateDir)).processes.length === 0, { timeoutMs: 20_000 });
  const { runDir } = instancePaths(s.stateDir);
  for (const nsDir of ['netns', 'userns'].map((d) => path.join(runDir, d))) {
    for (const ns of await readdir(nsDir).catch(() => [] as string[])) await unmountAll(path.join(nsDir, ns));
  }
  await unmountAll(layersDirOf(runDir, s.stateDir)); // the host view's layers' tmpfs (host-layer.ts)
  await rm(runDir, { recursive: true, force: true });
  await exec('ip', ['link', 'del', s.network.bridge]).catch(() => undefined);
}

export async function netRebootTrial(s: NetSuite, rng: Rng, t: number, log: (m: string) => void): Promise<void> {
  s.stats.trials++;
  s.stats.reboots++;
  await simulateReboot(s);
  await change(s, rng);
  log(`reboot trial ${t}: ${s.model.size} declared after the reboot`);
  await apply(s);
  await checkNetwork(s, true);
}

export function describeNetStats(st: NetSuite['stats']): string {
  return `network trials ${st.trials} (${st.kills} SIGKILLs, ${st.reboots} reboots), ${st.changes} changes, ${st.leaks} leaks found`;
}
