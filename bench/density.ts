/**
 * Density (issue 25; `npm run bench -- --density N`, and N = 200 in the normal run): N long-running
 * containers (host template, a shell loop, memory 16Mi, pids 16, network none), then what they
 * cost and how acetate behaves with them:
 *
 *   0. the node's limits for N more containers (acetate's own check, src/runtime/runc/node-limits.ts)
 *   1. the bare loop at N (bench/baseline/create.sh with the very config acetate writes, at
 *      acetate's default concurrency), then acetate apply at N (default flags): time to all running
 *   2. node memory per container (PSS of conmons and containers, kernel memory from /proc/meminfo),
 *      disk per container
 *   3. `acetate run` (default flags) at steady state: CPU ms per second, RSS; the no-op pass;
 *      atomic save → new limit in the cgroup; `acetate get` and no-op `acetate plan`
 *   4. teardown of N, the node checked clean (bench/lib/leaks.ts)
 *   5. create at 100 (or N if smaller), one at a time and 8 at once, against the bare loop at the same
 *
 * Results: bench/results/density.{md,json}, and the table in results.md (lib/density-report.ts).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { findNodeLimits, readNodeFacts } from '../src/runtime/runc/node-limits.js';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { editLatency, startLoop } from './acetate-run.js';
import { acetateConfigTemplate, PROBE_NAME, type AcetateTemplate } from './lib/acetate-config.js';
import { BASELINE, CLI, LOOP_NODE_FLAGS, NOOP, check, log, runcCount, type Baseline, type Harness, type Instance } from './lib/harness.js';
import { openDirsForRanges, probeTemplate, startIdmapLoop, unprivilegedInstance, type ProbedTemplate } from './lib/idmap-baseline.js';
import { assertNoLeaks } from './lib/leaks.js';
import { kernelGrowth, kernelMemory, kernelTotal, processMemoryUnder } from './lib/node-memory.js';
import { writeDensityResults, type DensityCreate, type DensityResults } from './lib/density-report.js';
import { fmtMs, median, round } from './lib/stats.js';
import { duBytes, machine, measure, procCpuMs, vmRssBytes, type Measured } from './lib/sys.js';
import { writeFile } from 'node:fs/promises';
import type { PassSample } from './noop-pass.js';

/** acetate's default --concurrency (apply and run): the bare loop runs as many at once. */
export const DEFAULT_CONCURRENCY = 4;

export function densityYaml(name: string, memoryMi = 16): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: host
  command: ["/bin/sh", "-c", "while :; do sleep 3600; done"]
  network: none
  terminationGracePeriodSeconds: 0
  resources: { memory: ${memoryMi}Mi, pids: 16 }
`;
}

/** Its own names (not workload.ts's b0000...): its keyrings (`_ses.default_<name>`) are told apart from other runs' on the node. */
export const nameOf = (i: number): string => `density-${String(i).padStart(4, '0')}`;

export interface DensityOptions {
  n: number;
  quick: boolean;
  out: string;
  /** --density-host-users: the old mode (ACETATE_HOST_USERS=true, the node's ids; the bare loop create.sh). Else the default: a user namespace per container. */
  hostUsers: boolean;
  /** The work root (state dirs): opened o+x for the containers' ranges in the default mode. */
  workRoot: string;
}

/** The bare loop's side: acetate's config as create.sh's template, or (user namespaces) as create-idmap.sh's. */
type BareSide = { kind: 'host-users'; tpl: AcetateTemplate } | { kind: 'userns'; tpl: ProbedTemplate };

export async function densityBench(h: Harness, o: DensityOptions): Promise<DensityResults> {
  const { n } = o;
  const load = async () => (await import('node:os')).loadavg().map((x) => round(x, 2));
  const r: DensityResults = {
    startedAt: new Date().toISOString(),
    n,
    machine: machine(),
    loadAvgStart: await load(),
    creates: [],
    notes: [],
  } as DensityResults;
  // 0. Would the node take N more? acetate's own check, as apply makes it.
  const facts = await readNodeFacts({ namespaces: true });
  r.nodeLimits = findNodeLimits(facts, n).map((f) => f.message);
  r.nodeFacts = facts;
  for (const m of r.nodeLimits) log(`node limit: ${m}`);
  check(r.nodeLimits.length === 0, `the node cannot take ${n} more containers: ${r.nodeLimits.join('; ')}`);
  // This process holds no fd per container (it reads /proc one file at a time), the CLI it runs
  // and runc inherit its limits: say what they are.
  r.nofile =
    /^Max open files\s+(\S+)\s+(\S+)/m
      .exec(await readFile('/proc/self/limits', 'utf8'))
      ?.slice(1, 3)
      .join('/') ?? '?';
  r.userNamespaces = !o.hostUsers;
  log(
    o.hostUsers
      ? 'mode: node ids (ACETATE_HOST_USERS=true), bare loop create.sh'
      : 'mode: the default, a user namespace per container; bare loop create-idmap.sh',
  );
  const restore = o.hostUsers ? async () => undefined : await openDirsForRanges(h, [o.workRoot, h.runRoot]);
  try {
    const side = await bareSide(h, o);
    await measureAll(h, r, o, side);
  } finally {
    r.loadAvgEnd = await load();
    await restore();
  }
  await writeDensityResults(r, o.out, log);
  return r;
}

/** A new acetate instance in the measured mode. */
const instanceFor = (h: Harness, o: { hostUsers: boolean }): Promise<Instance> => (o.hostUsers ? h.newInstance() : unprivilegedInstance(h));

async function bareSide(h: Harness, o: DensityOptions): Promise<BareSide> {
  if (o.hostUsers) return { kind: 'host-users', tpl: await acetateConfigTemplate(h, densityYaml(PROBE_NAME)) };
  const inst = await unprivilegedInstance(h);
  try {
    return { kind: 'userns', tpl: await probeTemplate(h, inst, densityYaml(PROBE_NAME)) };
  } finally {
    await inst.cleanup();
  }
}

/** 1-5: the bare loop at N, acetate at N, create at 100 against the bare loop. */
async function measureAll(h: Harness, r: DensityResults, o: DensityOptions, tpl: BareSide): Promise<void> {
  const { n } = o;
  // 1. The bare loop at N, acetate's default concurrency.
  r.bare = await bareAt(h, tpl, n, DEFAULT_CONCURRENCY, true);
  log(`bare loop: ${n} running in ${fmtMs(r.bare.createMs)} (c${DEFAULT_CONCURRENCY}), destroyed in ${fmtMs(r.bare.destroyMs ?? NaN)}`);
  await acetateAt(h, r, o);
  // 5. At 100: one at a time and 8 at once, each against the bare loop at the same.
  const m = Math.min(100, n);
  for (const c of [1, 8]) {
    r.creates.push(await bareAt(h, tpl, m, c, false));
    r.creates.push(await acetateCreate(h, o, m, c));
  }
}

/** The bare loop: N containers with acetate's config (and, in the default, its mappings), K at once; memory while they run; destroy. */
async function bareAt(h: Harness, side: BareSide, n: number, k: number, full: boolean): Promise<DensityCreate> {
  const k0 = await kernelMemory();
  let b: Baseline;
  let c: Measured;
  let destroy: () => Promise<Measured>;
  let cleanup: () => Promise<void>;
  if (side.kind === 'userns') {
    const loop = await startIdmapLoop(h, side.tpl.text, [...side.tpl.above, '/'], n, k);
    ({ b, destroy, cleanup } = loop);
    c = loop.created;
  } else {
    b = await h.newBaseline({ acetate: side.tpl });
    cleanup = b.cleanup;
    const env = { ...b.env, CONCURRENCY: String(k) };
    c = await measure('bash', [path.join(BASELINE, 'create.sh'), b.work, String(n), b.template], { group: h.cpuGroup, env });
    destroy = async () => {
      const d = await measure('bash', [path.join(BASELINE, 'destroy.sh'), b.work, b.template], { group: h.cpuGroup, env });
      check(d.code === 0, `bare loop destroy failed: ${d.stderr}`);
      return d;
    };
  }
  try {
    check(c.code === 0, `bare loop create failed: ${c.stderr}`);
    check((await runcCount(path.join(b.env.RUN_DIR, 'runc'))) === n, 'bare loop: not all running');
    const row: DensityCreate = { variant: 'bare loop', n, concurrency: k, createMs: round(c.wallMs), cpuMs: round(c.cpuMs) };
    if (full) {
      const grown = kernelGrowth(k0, await kernelMemory());
      const parent = /"cgroupsPath": "\/([^/"]+)\//.exec(await readFile(b.template, 'utf8'))?.[1] ?? '';
      const pm = await processMemoryUnder(parent);
      row.memory = { kernel: grown, processes: pm, perContainerBytes: round((kernelTotal(grown) + pm.conmonPssBytes + pm.containerPssBytes) / n) };
    }
    const d = await destroy();
    row.destroyMs = round(d.wallMs);
    log(`bare loop ${n} at c${k}: create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
    return row;
  } finally {
    await cleanup();
  }
}

async function writeManifests(dir: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await writeFile(path.join(dir, `${nameOf(i)}.yaml`), densityYaml(nameOf(i)));
}

async function allRunning(h: Harness, inst: Instance, n: number): Promise<void> {
  const got = await h.listJson(inst);
  const running = got.filter((x) => x.phase === 'Running').length;
  check(got.length === n && running === n, `acetate: ${running}/${n} running`);
}

/** acetate apply of N at concurrency k, then its destroy (for the create comparison at 100). */
async function acetateCreate(h: Harness, o: DensityOptions, n: number, k: number): Promise<DensityCreate> {
  const inst = await instanceFor(h, o);
  try {
    await writeManifests(inst.dir, n);
    const c = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', String(k)]);
    check(c.code === 0, `acetate apply failed: ${c.stderr.slice(-2000)}`);
    await allRunning(h, inst, n);
    const d = await destroyAll(h, inst, n, k);
    log(`acetate ${n} at c${k}: create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
    return { variant: 'acetate', n, concurrency: k, createMs: round(c.wallMs), cpuMs: round(c.cpuMs), destroyMs: round(d.wallMs) };
  } finally {
    await inst.cleanup();
  }
}

/** Every manifest removed, apply --allow-empty; the node checked clean. */
async function destroyAll(h: Harness, inst: Instance, n: number, k?: number): Promise<Measured> {
  for (let i = 0; i < n; i++) await rm(path.join(inst.dir, `${nameOf(i)}.yaml`));
  const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', ...(k ? ['--concurrency', String(k)] : [])]);
  check(d.code === 0, `acetate destroy failed: ${d.stderr.slice(-2000)}`);
  await assertNoLeaks(inst.stateDir, { runDir: inst.runDir, waitMs: 30_000 });
  return d;
}

/** Median wall and CPU (the process's, from the cpu group) of `times` runs. */
async function timed(h: Harness, file: string, args: string[], env: NodeJS.ProcessEnv, times: number): Promise<{ wallMs: number; cpuMs: number }> {
  const ms: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = await measure(file, args, { env, timeoutMs: 600_000, group: h.cpuGroup });
    check(t.code === 0, `${args.slice(-3).join(' ')} failed: ${t.stderr.slice(-1000)}`);
    ms.push(t.wallMs);
    cpu.push(t.cpuMs);
  }
  return { wallMs: round(median(ms)), cpuMs: round(median(cpu)) };
}

/** 1-4 for acetate at N. */
async function acetateAt(h: Harness, r: DensityResults, o: DensityOptions): Promise<void> {
  const { n } = o;
  const inst = await instanceFor(h, o);
  try {
    await writeManifests(inst.dir, n);
    const ip = instancePaths(inst.stateDir, inst.runDir);
    const k0 = await kernelMemory();
    const c = await h.acetate(inst, ['apply', '-f', inst.dir]);
    check(c.code === 0, `acetate apply of ${n} failed: ${c.stderr.slice(-2000)}`);
    await allRunning(h, inst, n);
    const grown = kernelGrowth(k0, await kernelMemory());
    const pm = await processMemoryUnder(ip.cgroupParent);
    check(pm.conmons === n, `expected ${n} conmons, found ${pm.conmons}`);
    // What each container holds of the limits node-limits.ts checks (its PER_CONTAINER figures),
    // counted on the instance's own processes, keyrings and cgroups (the node is shared).
    const keys = (await readFile('/proc/keys', 'utf8')).split('\n').filter((l) => l.includes(' _ses.default_density-'));
    const memcgs = (await readdir(`/sys/fs/cgroup/memory${ip.cgroupParent}`, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory());
    r.limitsPerContainer = {
      tasks: round(pm.threads / n, 2),
      keys: round(keys.length / n, 2),
      files: round(pm.fds / n, 2),
      memoryCgroups: round(memcgs.length / n, 2),
    };
    log(`per container: ${JSON.stringify(r.limitsPerContainer)}`);
    const diskBytes = (await duBytes(ip.containersDir)) + (await duBytes(ip.runContainersDir)) + (await duBytes(ip.runcRoot));
    r.acetate = {
      variant: 'acetate',
      n,
      concurrency: DEFAULT_CONCURRENCY,
      createMs: round(c.wallMs),
      cpuMs: round(c.cpuMs),
      memory: { kernel: grown, processes: pm, perContainerBytes: round((kernelTotal(grown) + pm.conmonPssBytes + pm.containerPssBytes) / n) },
      diskPerContainerBytes: round(diskBytes / n),
    };
    log(
      `acetate: ${n} running in ${fmtMs(c.wallMs)} (default concurrency); node memory ${round(r.acetate.memory!.perContainerBytes / 1024)} KiB per container`,
    );
    // 3. acetate run, default flags (no metrics listener: port 0, so parallel runs never collide).
    const loop = await startLoop(h, inst, [], { defaults: true });
    try {
      await new Promise((res) => setTimeout(res, 5_000)); // past the first sync's tail
      // Two windows, one after the other: the first minute after ready still holds the start's
      // tail (its first major collection of the start's garbage: ~45 ms at 300 containers, more
      // at 2,500; the host view's first check), the second is the steady state the target is for.
      const windowS = o.quick ? 15 : 60;
      const rss: number[] = [];
      const cpuWindow = async (): Promise<{ s: number; cpuMs: number }> => {
        const cpu0 = await procCpuMs(loop.pid);
        const t0 = performance.now();
        while (performance.now() - t0 < windowS * 1000) {
          rss.push(await vmRssBytes(loop.pid));
          await new Promise((res) => setTimeout(res, 500));
        }
        return { cpuMs: (await procCpuMs(loop.pid)) - cpu0, s: (performance.now() - t0) / 1000 };
      };
      const first = await cpuWindow();
      const steady = await cpuWindow();
      r.loop = {
        windowS: round(steady.s, 1),
        cpuMsPerSecond: round(steady.cpuMs / steady.s, 1),
        firstMinuteCpuMsPerSecond: round(first.cpuMs / first.s, 1),
        rssBytes: median(rss),
        rssMaxBytes: Math.max(...rss),
      };
      log(
        `acetate run with ${n}: ${r.loop.cpuMsPerSecond} ms CPU per second (the window before: ${r.loop.firstMinuteCpuMsPerSecond}), RSS ${round(r.loop.rssBytes / 2 ** 20)} MiB`,
      );
      const edits = o.quick ? 10 : 30;
      r.latency = await editLatency(loop, inst, n, edits, { yamlOf: densityYaml, memoryMi: [24, 20], nameOf });
      check(r.latency.failures === 0, `${r.latency.failures} edits never reached the cgroup`);
      log(`atomic save → cgroup limit at ${n}: p50 ${fmtMs(r.latency.p50Ms)}, p90 ${fmtMs(r.latency.p90Ms)}`);
      const env = { ...process.env, ...inst.env };
      // As bin/acetate runs the short commands: without the loop's node flags (LOOP_NODE_FLAGS).
      // Beside them, a bare `node -e 0`: what starting Node alone costs on this (shared) machine now.
      const bare = await timed(h, process.execPath, ['-e', '0'], env, 3);
      const get = await timed(h, process.execPath, [CLI, '--state-dir', inst.stateDir, 'get'], env, 3);
      const planned = await timed(h, process.execPath, [CLI, '--state-dir', inst.stateDir, 'plan', '-f', inst.dir], env, 3);
      // Beside `run`, get and plan answer from its view (controller/observed.ts); --direct reads every container, as without it.
      const getDirect = await timed(h, process.execPath, [CLI, '--state-dir', inst.stateDir, 'get', '--direct'], env, 3);
      const planDirect = await timed(h, process.execPath, [CLI, '--state-dir', inst.stateDir, 'plan', '-f', inst.dir, '--direct'], env, 3);
      r.getMs = get.wallMs;
      r.planMs = planned.wallMs;
      r.getPlanCpu = { getMs: get.cpuMs, planMs: planned.cpuMs, bareNodeWallMs: bare.wallMs, bareNodeCpuMs: bare.cpuMs };
      r.getPlanDirect = { getMs: getDirect.wallMs, getCpuMs: getDirect.cpuMs, planMs: planDirect.wallMs, planCpuMs: planDirect.cpuMs };
      log(
        `acetate get ${fmtMs(r.getMs)} (CPU ${fmtMs(get.cpuMs)}), no-op plan ${fmtMs(r.planMs)} (CPU ${fmtMs(planned.cpuMs)}) at ${n}; bare node ${fmtMs(bare.wallMs)} (CPU ${fmtMs(bare.cpuMs)}); --direct: get ${fmtMs(getDirect.wallMs)}, plan ${fmtMs(planDirect.wallMs)}`,
      );
    } finally {
      await loop.stop();
    }
    const np = await measure(process.execPath, [...LOOP_NODE_FLAGS, NOOP, inst.stateDir, inst.dir, '5'], { timeoutMs: 600_000, env: inst.env });
    check(np.code === 0, `noop-pass failed: ${np.stderr}`);
    const { samples } = JSON.parse(np.stdout) as { samples: PassSample[] };
    check(
      samples.every((x) => x.actions === 0),
      'the no-op pass is not a no-op',
    );
    r.noop = { wallMs: round(median(samples.map((x) => x.wallMs)), 1), cpuMs: round(median(samples.map((x) => x.cpuMs)), 1) };
    // 4. Teardown, default concurrency; nothing left.
    const k1 = await kernelMemory();
    const d = await destroyAll(h, inst, n);
    r.acetate.destroyMs = round(d.wallMs);
    r.kernelAfterTeardown = kernelGrowth(k1, await kernelMemory());
    r.kernelNetAfterTeardown = kernelGrowth(k0, await kernelMemory());
    log(`acetate: ${n} destroyed in ${fmtMs(d.wallMs)}, node clean`);
  } finally {
    await inst.cleanup();
  }
}
