/**
 * CNI plugins SIGKILLed in the middle of their work: seeded trials, each arming one kill of one
 * plugin (bridge, host-local, portmap, firewall) during one operation (ADD while a container is
 * set up, CHECK while its network is looked at in depth, DEL while it is removed) after a random
 * delay. The plugins run through wrappers (a CNI_PATH of this suite's own) that start the real
 * plugin and SIGKILL it when armed. Afterwards the operation is retried as acetate would, and
 * checked from the node: the container that should run answers on its address and its published
 * port; of a removed one, nothing is left: rule in the nat or filter table, lease, veth, namespace,
 * port claim, held port.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CNI_PATH } from '../../src/runtime/network/cni-exec.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { executeAction } from '../../src/apply/execute.js';
import { plan } from '../../src/plan/plan.js';
import { findProcessesByCmdline } from '../../src/util/processes.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { instanceRules, snapshotNetworkLeaks, testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { freePort, httpGet, published, webRequest } from '../support/network-test.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor, type Rng } from './lib.js';

const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'loopback'];
export type CniOp = 'ADD' | 'CHECK' | 'DEL';

/**
 * The wrapper: when `arm-<COMMAND>-<plugin>` exists, the first invocation that moves it away
 * (mv is atomic) is killed. The file says when: a delay (seconds), after which the real plugin,
 * run in the background, is SIGKILLed; or `iptables`: at its first iptables run (the plugin finds
 * iptables in PATH: a fake one first there SIGKILLs its caller), the moment the bridge plugin's DEL
 * has released the address and deleted the veth but not yet removed its masquerade rules.
 */
function wrapper(dir: string, plugin: string): string {
  return `#!/bin/sh
arm="${dir}/arm-$CNI_COMMAND-${plugin}"
if [ -e "$arm" ] && mv "$arm" "$arm.$$" 2>/dev/null; then
  when=$(cat "$arm.$$"); rm -f "$arm.$$"
  echo "$CNI_COMMAND ${plugin} $when" >> "${dir}/killed"
  if [ "$when" = iptables ]; then
    touch "${dir}/kill-at-iptables"
    PATH="${dir}/bin:$PATH" exec "${DEFAULT_CNI_PATH}/${plugin}"
  fi
  exec 3<&0
  "${DEFAULT_CNI_PATH}/${plugin}" <&3 &
  pid=$!
  sleep "$when"
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
  exit 137
fi
exec "${DEFAULT_CNI_PATH}/${plugin}"
`;
}

/** The fake iptables: armed, it SIGKILLs the plugin that runs it; else the real one. */
function fakeIptables(dir: string): string {
  return `#!/bin/sh
if [ -e "${dir}/kill-at-iptables" ] && rm "${dir}/kill-at-iptables" 2>/dev/null; then
  kill -9 "$PPID"
  exit 1
fi
PATH=$(echo "$PATH" | sed "s#${dir}/bin:##") exec iptables "$@"
`;
}

export interface PluginKillSuite {
  stateDir: string;
  cniDir: string;
  network: TestNetwork;
  runtime: RuncRuntime;
  stats: { trials: number; kills: number; failedOps: number; leaks: number };
}

export async function setupPluginKillSuite(): Promise<PluginKillSuite> {
  const cniDir = await mkdtemp(path.join(os.tmpdir(), 'acetate-cni-kill-'));
  for (const p of PLUGINS) {
    await writeFile(path.join(cniDir, p), wrapper(cniDir, p));
    await chmod(path.join(cniDir, p), 0o755);
  }
  await mkdir(path.join(cniDir, 'bin'));
  await writeFile(path.join(cniDir, 'bin', 'iptables'), fakeIptables(cniDir));
  await chmod(path.join(cniDir, 'bin', 'iptables'), 0o755);
  const stateDir = await makeTmpStateDir('acetate-cnikill-');
  const network = await testNetwork();
  const runtime = new RuncRuntime({
    stateDir,
    templates: new TemplateStore({ stateDir }),
    sweepLeftovers: true,
    network: { ...network, cniPath: cniDir, deepCheckIntervalMs: 0 },
  });
  return { stateDir, cniDir, network, runtime, stats: { trials: 0, kills: 0, failedOps: 0, leaks: 0 } };
}

export async function teardownPluginKillSuite(s: PluginKillSuite | undefined): Promise<void> {
  if (!s) return;
  await cleanupStateDir(s.stateDir, { runtime: s.runtime, network: s.network });
  await assertNoLeaks(s.stateDir, { network: s.network, dirRemoved: true });
  await rm(s.cniDir, { recursive: true, force: true });
}

/** A kill after `when` ms, or at the plugin's first iptables run. */
async function arm(s: PluginKillSuite, op: CniOp, plugin: string, when: number | 'iptables'): Promise<void> {
  await writeFile(path.join(s.cniDir, `arm-${op}-${plugin}`), when === 'iptables' ? when : (when / 1000).toFixed(3));
}

/** Removes an arm no plugin took; the kills so far (the wrappers' log). */
async function disarm(s: PluginKillSuite): Promise<number> {
  for (const f of await readdir(s.cniDir)) if (f.startsWith('arm-') || f === 'kill-at-iptables') await rm(path.join(s.cniDir, f), { force: true });
  return (await readFile(path.join(s.cniDir, 'killed'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
}

/** Retries an operation a killed plugin failed, as the loop would (a few times). */
async function retried<T>(s: PluginKillSuite, fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      s.stats.failedOps++;
      if (i >= 3) throw err;
    }
  }
}

/** What a removed container may not leave: its rules (nat by id, filter by address), lease, veth, namespace, claims, holders. */
async function leftOf(s: PluginKillSuite, id: string, ip: string | undefined, hostPort: number): Promise<string[]> {
  const out: string[] = [];
  const leaks = await snapshotNetworkLeaks(s.stateDir, s.network);
  if (leaks.netns.includes(id)) out.push(`namespace ${id}`);
  if (leaks.userns.includes(id)) out.push(`user namespace ${id}`);
  if (ip && leaks.leases.includes(ip)) out.push(`lease ${ip}`);
  for (const { table, rule } of await instanceRules(s.stateDir, s.network)) {
    if (rule.includes(`id: \\"${id}\\"`) || (ip && rule.includes(`${ip}/32`))) out.push(`${table}: ${rule}`);
  }
  const claims = await readdir(path.join(s.stateDir, 'network', 'ports')).catch(() => [] as string[]);
  if (claims.some((c) => c.endsWith(`_${hostPort}`))) out.push(`claim of ${hostPort}`);
  const held = await findProcessesByCmdline(`acetate-port-holder:${s.stateDir}/network/ports/tcp_127.0.0.1_${hostPort}`);
  if (held.length) out.push(`holder of ${hostPort}`);
  return out;
}

/** One trial: a container set up, looked at and removed, with one plugin killed during `op`. */
export async function pluginKillTrial(
  s: PluginKillSuite,
  rng: Rng,
  t: number,
  log: (m: string) => void,
  only?: { op: CniOp; plugin: string; when?: number | 'iptables' },
): Promise<void> {
  s.stats.trials++;
  const op = only?.op ?? rng.pick<CniOp>(['ADD', 'CHECK', 'DEL']);
  // loopback runs only at ADD; CHECK skips portmap (portmap-check.ts).
  const plugin =
    only?.plugin ?? rng.pick(op === 'ADD' ? PLUGINS : op === 'CHECK' ? ['bridge', 'host-local', 'firewall'] : ['bridge', 'host-local', 'portmap', 'firewall']);
  // Half the kills at a random moment, half at the plugin's first iptables run.
  const when: number | 'iptables' = only?.when ?? (rng.chance(0.5) ? 'iptables' : rng.int(40));
  const name = `k${t}`;
  const key = `default/${name}`;
  const hostPort = await freePort();
  const req = webRequest(name, published(hostPort));
  const killsBefore = await disarm(s);

  if (op === 'ADD') await arm(s, op, plugin, when);
  await s.runtime.create(req);
  await retried(s, () => s.runtime.start(key));
  if (op === 'CHECK') {
    await arm(s, op, plugin, when);
    // A deep look; a problem it reports is repaired in place, as the loop would.
    const a = await s.runtime.get(key);
    const p = plan({
      desired: new Map([[key, { key, namespace: 'default', name, spec: req.spec, source: req.source }]]),
      actual: new Map([[key, a!]]),
      complete: true,
    });
    for (const x of p.actions) await retried(s, () => executeAction(x, { runtime: s.runtime }));
  }
  await disarm(s);
  const ip = (await s.runtime.get(key))?.network?.ip;
  assert.ok(ip, `${name} has an address`);
  assert.equal(await waitFor(() => httpGet(ip, 80), { timeoutMs: 10_000, what: `${name} on ${ip}` }), `hello-${name}\n`);
  assert.equal(await waitFor(() => httpGet('127.0.0.1', hostPort), { timeoutMs: 10_000, what: `${name} on ${hostPort}` }), `hello-${name}\n`);

  if (op === 'DEL') await arm(s, op, plugin, when);
  await s.runtime.stop(key, { graceSeconds: 0 });
  await retried(s, () => s.runtime.remove(key, { keepPrivateArea: false }));
  const killed = (await disarm(s)) - killsBefore;
  s.stats.kills += killed;
  const left = await leftOf(s, `default_${name}`, ip, hostPort);
  s.stats.leaks += left.length;
  const at = when === 'iptables' ? 'at its first iptables run' : `after ${when} ms`;
  log(`trial ${t}: ${plugin} armed to be killed during ${op} ${at}: ${killed ? 'killed' : 'finished before'}`);
  assert.deepEqual(left, [], `nothing of ${name} is left`);
}

export function describePluginKillStats(st: PluginKillSuite['stats']): string {
  return `plugin-kill trials ${st.trials} (${st.kills} plugins SIGKILLed), ${st.failedOps} operations failed and retried, ${st.leaks} leaks found`;
}
