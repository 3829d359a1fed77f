/**
 * The network benchmark (`npm run bench -- --only network`), registered in run.ts:
 *
 *   1. create N containers with `network: bridge` and one published port each, `acetate apply
 *      --concurrency 1`, against the bare loop doing the same CNI calls plus `runc run -d` per
 *      container (bench/baseline/create-bridge.sh), side by side in one run, alternating;
 *   2. port change latency under `acetate run`: a manifest saved with a new hostPort → the new
 *      port answers on 127.0.0.1 (p50/p90), with the pid unchanged;
 *   3. repair times under the same `acetate run` (default resync 30 s and process poll 2 s): a
 *      container's veth, its DNAT rule, or the whole bridge deleted → its published port answers
 *      again, with the same pid and the same MAC (the node's neighbour entry stays right).
 *
 * Each side has its own bridge and /24, created for the run and removed at the end. Traffic goes
 * only to 127.0.0.1. Results: bench/results/network.{md,json}.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { cleanupStateDir } from './lib/leaks.js';
import { httpGet } from './lib/local-net.js';
import { cleanupNetwork, snapshotNetworkLeaks, type TestNetwork } from './lib/network-leaks.js';
import { fmtMs, fmtRatio, median, quantile, round } from './lib/stats.js';
import { measure, type CpuGroup, type Measured } from './lib/sys.js';
import { holderMemory, holdTiming, type HolderMemory, type HoldTiming } from './lib/port-hold-cost.js';
import { baselineConfigTemplate, containerYaml, saveAtomically, tmpDir } from './lib/workload.js';

export interface NetworkBenchContext {
  runRoot: string;
  cpuGroup: CpuGroup;
  /** bin/acetate's node flags for `acetate run` (the short commands run without them). */
  loopNodeFlags: string[];
  cli: string;
  quick: boolean;
  /** Containers for the create comparison (default 100; 20 with --quick). */
  n?: number;
  /** Measure the port change latency too (default true; $ACETATE_BENCH_NETWORK_PORT_CHANGE=0 skips it). */
  portChange?: boolean;
  outDir: string;
  log: (m: string) => void;
  onCleanup: (fn: () => Promise<void>) => () => Promise<void>;
}

export interface NetworkResults {
  startedAt: string;
  create: {
    n: number;
    reps: number;
    bareMs: number[];
    acetateMs: number[];
    bareMedianMs: number;
    acetateMedianMs: number;
    ratio: number;
    bareCpuPerContainerMs: number;
    acetateCpuPerContainerMs: number;
  };
  destroy: { bareMs: number[]; acetateMs: number[]; ratio: number };
  /** The cost of holding published ports open (bench/lib/port-hold-cost.ts). */
  holding?: HolderMemory & HoldTiming;
  portChange?: { containers: number; edits: number; p50Ms: number; p90Ms: number; maxMs: number; samplesMs: number[]; samePid: boolean };
  /** Deleted → the published port answers again (ms), per kind of damage; samePid and sameMac over all. */
  repair?: { vethMs: number[]; ruleMs: number[]; bridgeMs: number[]; samePid: boolean; sameMac: boolean };
}

const BASELINE = path.join(PACKAGE_ROOT, 'bench', 'baseline');

async function freshNetwork(): Promise<TestNetwork> {
  const routes = (await measure('ip', ['-4', 'route', 'show'])).stdout;
  for (;;) {
    const bridge = `acb${randomBytes(3).toString('hex')}`;
    const prefix = `10.${randomInt(200, 250)}.${randomInt(0, 256)}.`;
    if (!existsSync(`/sys/class/net/${bridge}`) && !routes.includes(prefix)) return { bridge, subnet: `${prefix}0/24` };
  }
}

/** A base port such that base..base+n-1 are free on 127.0.0.1 now. */
async function freeRange(n: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port }, () => s.close(() => resolve(true)));
    });
  for (;;) {
    const base = randomInt(20_000, 60_000 - n);
    let ok = true;
    for (let p = base; p < base + n && ok; p++) ok = await free(p);
    if (ok) return base;
  }
}

function manifests(n: number, base: number, command: string[]): string {
  const ports = (i: number) => `  network: bridge\n  ports: [{ name: http, containerPort: 80, hostPort: ${base + i}, hostIP: 127.0.0.1 }]\n`;
  return Array.from({ length: n }, (_, i) => containerYaml(`n${i}`, { command, extra: ports(i) })).join('---\n');
}

export async function networkBenchmark(ctx: NetworkBenchContext): Promise<NetworkResults> {
  const n = ctx.n ?? (ctx.quick ? 20 : 100);
  const reps = ctx.quick ? 1 : 3;
  const startedAt = new Date().toISOString();
  const bare: { c: Measured[]; d: Measured[] } = { c: [], d: [] };
  const ace: { c: Measured[]; d: Measured[] } = { c: [], d: [] };
  let memory: HolderMemory | undefined;
  const acetate = (stateDir: string, runDir: string, netw: TestNetwork, args: string[]) =>
    measure(process.execPath, [ctx.cli, '--state-dir', stateDir, ...args], {
      group: ctx.cpuGroup,
      env: { ACETATE_RUN_DIR: runDir, ACETATE_NETWORK_BRIDGE: netw.bridge, ACETATE_NETWORK_SUBNET: netw.subnet },
      timeoutMs: 3_600_000,
    });

  for (let rep = 1; rep <= reps; rep++) {
    // The bare loop.
    {
      const netw = await freshNetwork();
      const root = await tmpDir('acetate-bench-nb-');
      const run = await mkdtemp(path.join(ctx.runRoot, 'acetate-bench-nb-'));
      const { file } = await baselineConfigTemplate(root);
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace(/"type": "network"/, '"type": "network",\n        "path": "@NETNS@"'));
      const work = path.join(root, 'w');
      const env = { RUN_DIR: run };
      const cleanup = ctx.onCleanup(async () => {
        await measure('bash', [path.join(BASELINE, 'destroy-bridge.sh'), work, file, netw.bridge, netw.subnet], { env });
        // The bare loop's DEL can leave masquerade rules: remove them, or later runs pay for them.
        await cleanupNetwork(root, netw, `bench-${netw.bridge}`);
        await rm(root, { recursive: true, force: true });
        await rm(run, { recursive: true, force: true });
      });
      try {
        const base = await freeRange(n);
        const c = await measure('bash', [path.join(BASELINE, 'create-bridge.sh'), work, String(n), file, netw.bridge, netw.subnet, String(base)], {
          group: ctx.cpuGroup,
          env,
        });
        if (c.code !== 0) throw new Error(`baseline create-bridge failed: ${c.stderr}`);
        const d = await measure('bash', [path.join(BASELINE, 'destroy-bridge.sh'), work, file, netw.bridge, netw.subnet], { group: ctx.cpuGroup, env });
        if (d.code !== 0) throw new Error(`baseline destroy-bridge failed: ${d.stderr}`);
        bare.c.push(c);
        bare.d.push(d);
        ctx.log(`network N=${n} rep ${rep}: bare loop create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
      } finally {
        await cleanup();
      }
    }
    // acetate, concurrency 1.
    {
      const netw = await freshNetwork();
      const stateDir = await tmpDir('acetate-bench-ns-');
      const runDir = await mkdtemp(path.join(ctx.runRoot, 'acetate-bench-nr-'));
      const dir = await tmpDir('acetate-bench-nm-');
      const cleanup = ctx.onCleanup(async () => {
        await cleanupStateDir(stateDir, { runDir, network: netw });
        await rm(dir, { recursive: true, force: true });
      });
      try {
        const base = await freeRange(n);
        await writeFile(path.join(dir, 'containers.yaml'), manifests(n, base, ['/bin/sleep', '1000000']));
        const c = await acetate(stateDir, runDir, netw, ['apply', '-f', dir, '--concurrency', '1']);
        if (c.code !== 0) throw new Error(`acetate apply failed: ${c.stderr}\n${c.stdout.slice(-2000)}`);
        const got = JSON.parse((await acetate(stateDir, runDir, netw, ['get', '-o', 'json'])).stdout) as {
          items: { status?: { phase?: string; ip?: string } }[];
        };
        if (got.items.length !== n || !got.items.every((x) => x.status?.phase === 'Running' && x.status.ip))
          throw new Error('acetate: not all running with an address');
        memory ??= await holderMemory(stateDir);
        await rm(path.join(dir, 'containers.yaml'));
        const d = await acetate(stateDir, runDir, netw, ['apply', '-f', dir, '--allow-empty', '--concurrency', '1']);
        if (d.code !== 0) throw new Error(`acetate destroy failed: ${d.stderr}`);
        const left = await snapshotNetworkLeaks(stateDir, netw, { runDir });
        if (left.netns.length + left.userns.length + left.leases.length + left.veths.length + left.iptables.length + left.walls.length)
          throw new Error(`acetate destroy left ${JSON.stringify(left)}`);
        ace.c.push(c);
        ace.d.push(d);
        ctx.log(`network N=${n} rep ${rep}: acetate c1 create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
      } finally {
        await cleanup();
      }
    }
  }
  const med = (m: Measured[]) => median(m.map((x) => round(x.wallMs)));
  const results: NetworkResults = {
    startedAt,
    create: {
      n,
      reps,
      bareMs: bare.c.map((m) => round(m.wallMs)),
      acetateMs: ace.c.map((m) => round(m.wallMs)),
      bareMedianMs: med(bare.c),
      acetateMedianMs: med(ace.c),
      ratio: round(med(ace.c) / med(bare.c), 2),
      bareCpuPerContainerMs: round(median(bare.c.map((m) => m.cpuMs / n)), 1),
      acetateCpuPerContainerMs: round(median(ace.c.map((m) => m.cpuMs / n)), 1),
    },
    destroy: { bareMs: bare.d.map((m) => round(m.wallMs)), acetateMs: ace.d.map((m) => round(m.wallMs)), ratio: round(med(ace.d) / med(bare.d), 2) },
  };
  if (memory) results.holding = { ...memory, ...(await holdTiming(await freeRange(n), n)) };
  if (results.holding) {
    const h = results.holding;
    ctx.log(
      `holding ports: ${h.holders} holders, ${h.pssKiBPerHolder} KiB PSS (${h.rssKiBPerHolder} KiB RSS) each; hold ${h.holdMsPerPort} ms, release ${h.releaseMsPerPort} ms per port`,
    );
  }
  if (ctx.portChange !== false) {
    const changed = await portChangeLatency(ctx, ctx.quick ? 8 : 20, ctx.quick ? 1 : 3);
    results.portChange = changed.portChange;
    results.repair = changed.repair;
  }
  await writeNetworkResults(ctx.outDir, results);
  return results;
}

/** acetate run over 5 httpd containers; each edit moves one container's hostPort; then `trials` rounds of repairs. */
async function portChangeLatency(
  ctx: NetworkBenchContext,
  edits: number,
  trials: number,
): Promise<{ portChange: NetworkResults['portChange']; repair: NetworkResults['repair'] }> {
  const k = 5;
  const netw = await freshNetwork();
  const stateDir = await tmpDir('acetate-bench-ls-');
  const runDir = await mkdtemp(path.join(ctx.runRoot, 'acetate-bench-lr-'));
  const dir = await tmpDir('acetate-bench-lm-');
  const env = { ...process.env, ACETATE_RUN_DIR: runDir, ACETATE_NETWORK_BRIDGE: netw.bridge, ACETATE_NETWORK_SUBNET: netw.subnet };
  const httpd = (i: number) => ['/bin/sh', '-c', `mkdir -p /tmp/w && echo n${i} > /tmp/w/index.html && exec busybox httpd -f -p 80 -h /tmp/w`];
  const write = (i: number, port: number) => saveAtomically(path.join(dir, `n${i}.yaml`), manifests(1, port, httpd(i)).replace('name: n0', `name: n${i}`));
  const ports = new Map<number, number>();
  for (let i = 0; i < k; i++) {
    ports.set(i, await freeRange(1));
    await write(i, ports.get(i)!);
  }
  const child = spawn(
    process.execPath,
    [...ctx.loopNodeFlags, ctx.cli, '--state-dir', stateDir, 'run', '-f', dir, '--metrics-addr', '0', '--log-format', 'json'],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const cleanup = ctx.onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await cleanupStateDir(stateDir, { runDir, network: netw });
    await rm(dir, { recursive: true, force: true });
  });
  const waitAnswer = async (port: number, want: string, timeoutMs: number) => {
    const t0 = performance.now();
    while (performance.now() - t0 < timeoutMs) {
      if ((await httpGet('127.0.0.1', port)) === want) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`127.0.0.1:${port} did not answer '${want.trim()}' in ${timeoutMs} ms: ${out.slice(-2000)}`);
  };
  try {
    for (let i = 0; i < k; i++) await waitAnswer(ports.get(i)!, `n${i}\n`, 60_000);
    const pids = async () =>
      (
        JSON.parse((await measure(process.execPath, [ctx.cli, '--state-dir', stateDir, 'get', '-o', 'json'], { env })).stdout) as {
          items: { metadata: { name: string }; status?: { pid?: number } }[];
        }
      ).items
        .map((x) => `${x.metadata.name}:${x.status?.pid}`)
        .join();
    const before = await pids();
    const samples: number[] = [];
    for (let e = 0; e < edits; e++) {
      const i = e % k;
      const port = await freeRange(1);
      const t0 = performance.now();
      await write(i, port);
      await waitAnswer(port, `n${i}\n`, 20_000);
      samples.push(round(performance.now() - t0));
      ports.set(i, port);
    }
    const samePid = (await pids()) === before;
    ctx.log(`port change latency over ${edits} edits: p50 ${fmtMs(quantile(samples, 0.5))}, p90 ${fmtMs(quantile(samples, 0.9))}; pids unchanged: ${samePid}`);
    const portChange = {
      containers: k,
      edits,
      p50Ms: round(quantile(samples, 0.5)),
      p90Ms: round(quantile(samples, 0.9)),
      maxMs: Math.max(...samples),
      samplesMs: samples,
      samePid,
    };

    // Repairs: damage one container's network (or the bridge), time until its port answers again.
    const stateOf = async (i: number) =>
      JSON.parse(await readFile(path.join(stateDir, 'containers', `default_n${i}`, 'network.json'), 'utf8')) as { hostVeth: string; netns: string };
    const macOf = async (i: number) => (await measure('nsenter', [`--net=${(await stateOf(i)).netns}`, 'cat', '/sys/class/net/eth0/address'])).stdout.trim();
    const macs = new Map<number, string>();
    for (let i = 0; i < k; i++) macs.set(i, await macOf(i));
    const beforeRepairs = await pids();
    const repair = { vethMs: [] as number[], ruleMs: [] as number[], bridgeMs: [] as number[], samePid: true, sameMac: true };
    const timed = async (i: number, damage: () => Promise<unknown>): Promise<number> => {
      await damage();
      const ms = round(await waitAnswer(ports.get(i)!, `n${i}\n`, 180_000));
      // The repair writes network.json right after the ADD that made the port answer.
      for (let t = 0; t < 200 && !(await stateOf(i).catch(() => undefined)); t++) await new Promise((r) => setTimeout(r, 10));
      return ms;
    };
    for (let t = 0; t < trials; t++) {
      const i = t % k;
      repair.vethMs.push(await timed(i, async () => measure('ip', ['link', 'del', (await stateOf(i)).hostVeth])));
      const rules = (await measure('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT'])).stdout
        .split('\n')
        .filter((l) => l.includes(`id: \\"default_n${i}\\"`));
      repair.ruleMs.push(await timed(i, async () => Promise.all(rules.map((r) => measure('sh', ['-c', `iptables -w -t nat ${r.replace(/^-A /, '-D ')}`])))));
      repair.bridgeMs.push(await timed(i, () => measure('ip', ['link', 'del', netw.bridge])));
    }
    for (let i = 0; i < k; i++) await waitAnswer(ports.get(i)!, `n${i}\n`, 180_000);
    for (let i = 0; i < k; i++) if ((await macOf(i)) !== macs.get(i)) repair.sameMac = false;
    repair.samePid = (await pids()) === beforeRepairs;
    ctx.log(
      `repairs under acetate run: veth ${repair.vethMs.map(fmtMs).join(', ')}; DNAT rule ${repair.ruleMs.map(fmtMs).join(', ')}; bridge ${repair.bridgeMs.map(fmtMs).join(', ')}; same pids ${repair.samePid}, same MACs ${repair.sameMac}`,
    );
    return { portChange, repair };
  } finally {
    await cleanup();
  }
}

export async function writeNetworkResults(outDir: string, r: NetworkResults): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'network.json'), `${JSON.stringify(r, null, 2)}\n`);
  const pc = r.portChange;
  const rp = r.repair;
  const md = `# Network benchmark (network: bridge, CNI reference plugins)

Run ${r.startedAt}. \`npm run bench -- --only network\`; method in bench/network.ts.

| what | target | measured | |
| --- | --- | --- | --- |
| create ${r.create.n} bridge containers with a published port, \`--concurrency 1\`, vs the bare loop (same CNI calls + \`runc run -d\`; acetate also holds each port open) | ≤ 1.0× | ${fmtRatio(r.create.ratio)} (acetate ${fmtMs(r.create.acetateMedianMs)}, bare loop ${fmtMs(r.create.bareMedianMs)}; medians of ${r.create.reps}) | ${r.create.ratio <= 1.0 ? 'met' : 'NOT MET'} |
| destroy them, vs the bare loop (CNI DEL + runc delete) | - | ${fmtRatio(r.destroy.ratio)} | |
<<<<<<< HEAD
${pc ? `| port change under \`acetate run\`: manifest saved → new hostPort answers on 127.0.0.1, p50 / p90 | - | ${fmtMs(pc.p50Ms)} / ${fmtMs(pc.p90Ms)} (${pc.edits} edits, max ${fmtMs(pc.maxMs)}; pids unchanged: ${pc.samePid}) | |\n` : ''}${rp ? `| repair under \`acetate run\` (resync 30 s, poll 2 s): veth deleted → port answers again, max | seconds, not minutes | ${fmtMs(Math.max(...rp.vethMs))} (${rp.vethMs.map(fmtMs).join(', ')}) | ${Math.max(...rp.vethMs) < 10_000 ? 'met' : 'NOT MET'} |\n| … DNAT rule deleted | seconds | ${fmtMs(Math.max(...rp.ruleMs))} (${rp.ruleMs.map(fmtMs).join(', ')}) | ${Math.max(...rp.ruleMs) < 10_000 ? 'met' : 'NOT MET'} |\n| … bridge deleted (every container's network repaired, one CNI DEL + ADD at a time; this one's port answering) | seconds | ${fmtMs(Math.max(...rp.bridgeMs))} (${rp.bridgeMs.map(fmtMs).join(', ')}); same pids ${rp.samePid}, same MACs ${rp.sameMac} | ${Math.max(...rp.bridgeMs) < 10_000 ? 'met' : 'NOT MET'} |\n` : ''}
=======
${r.holding ? `| holding published ports open: per port, memory of its holder (PSS / RSS), time to hold and to release | - | ${r.holding.pssKiBPerHolder} / ${r.holding.rssKiBPerHolder} KiB (${r.holding.holders} holders); ${r.holding.holdMsPerPort} ms / ${r.holding.releaseMsPerPort} ms | |\n` : ''}${pc ? `| port change under \`acetate run\`: manifest saved → new hostPort answers on 127.0.0.1, p50 / p90 | - | ${fmtMs(pc.p50Ms)} / ${fmtMs(pc.p90Ms)} (${pc.edits} edits, max ${fmtMs(pc.maxMs)}; pids unchanged: ${pc.samePid}) | |\n` : ''}
>>>>>>> i21b
Samples (ms): acetate create ${r.create.acetateMs.join(', ')}; bare loop create ${r.create.bareMs.join(', ')}.
CPU per container (the command and everything it started): acetate ${r.create.acetateCpuPerContainerMs} ms, bare loop ${r.create.bareCpuPerContainerMs} ms.
`;
  await writeFile(path.join(outDir, 'network.md'), md);
}
