/**
 * Benchmark 2's worker: repeated no-op reconcile passes (nothing changed) as `acetate apply` and
 * the loop's relist do them: load the manifest directory, list the runtime's containers, plan.
 * Prints JSON: per pass, the process's CPU time (process.cpuUsage) and wall time per stage, and
 * the CPU of the `runc list` child. Run by bench/run.ts (also under --cpu-prof).
 *
 * Like `acetate run`, the passes share one process and its caches (manifests, records and runc
 * state files are parsed again only when they change). `first` is the first pass of the process,
 * with every cache empty: what a one-shot `acetate apply` pays (without node's start-up). The
 * measured passes start once every file is older than the caches' racy window (RACY_MS): what
 * was written less than that ago is read every time, as it should (see util/stat-cache.ts).
 *
 * Usage: node dist/bench/noop-pass.js STATE_DIR MANIFEST_DIR PASSES [WARMUP]
 */
import { isolationSettingsFromEnv } from '../src/runtime/walls/settings.js';
import { readFile } from 'node:fs/promises';
import { loadManifestDir, ManifestCache } from '../src/sources/files/load.js';
import { RACY_MS } from '../src/util/stat-cache.js';
import { plan } from '../src/plan/plan.js';
import { RuncRuntime } from '../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../src/runtime/runc/templates.js';

export interface PassSample {
  cpuMs: number;
  wallMs: number;
  loadCpuMs: number;
  listCpuMs: number;
  planCpuMs: number;
  loadWallMs: number;
  listWallMs: number;
  planWallMs: number;
  /** CPU of children reaped during the pass (`runc list`), from /proc/self/stat cutime+cstime. */
  childCpuMs: number;
  actions: number;
  unchanged: number;
}

async function childrenCpuMs(): Promise<number> {
  const text = await readFile('/proc/self/stat', 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[13]) + Number(rest[14])) * 10;
}

const cpu = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

async function pass(runtime: RuncRuntime, dir: string, cache: ManifestCache): Promise<PassSample> {
  const ch0 = await childrenCpuMs();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const snapshot = await loadManifestDir(dir, { cache });
  const c1 = process.cpuUsage(c0);
  const t1 = performance.now();
  const list = await runtime.list();
  const c2 = process.cpuUsage(c0);
  const t2 = performance.now();
  const p = plan({
    desired: snapshot.containers,
    actual: new Map(list.map((c) => [c.key, c])),
    protectedKeys: snapshot.protectedKeys,
    failingOrigins: snapshot.failingOrigins,
    complete: snapshot.complete,
    incompleteReason: snapshot.incompleteReason,
    granularity: runtime.granularity,
    // What an absent hostUsers means, as the CLI's pass gives it (cli/converge-input.ts): without it
    // every container in a user namespace would be planned for a replace.
    ...(runtime.userNamespaceFacts ? { userNamespaces: runtime.userNamespaceFacts() } : {}),
  });
  const c3 = process.cpuUsage(c0);
  const t3 = performance.now();
  const ch1 = await childrenCpuMs();
  return {
    cpuMs: cpu(c3),
    wallMs: t3 - t0,
    loadCpuMs: cpu(c1),
    listCpuMs: cpu(c2) - cpu(c1),
    planCpuMs: cpu(c3) - cpu(c2),
    loadWallMs: t1 - t0,
    listWallMs: t2 - t1,
    planWallMs: t3 - t2,
    childCpuMs: ch1 - ch0,
    actions: p.actions.length,
    unchanged: p.unchanged.length,
  };
}

async function main(): Promise<void> {
  const [stateDir, dir, passesText, warmupText] = process.argv.slice(2);
  if (!stateDir || !dir) throw new Error('usage: noop-pass.js STATE_DIR MANIFEST_DIR PASSES [WARMUP]');
  // $ACETATE_RUN_DIR: the instance's run dir, as the CLI reads it.
  // Its isolation settings from the env as the CLI reads them: the plan compares each container's
  // walls (user namespace or node ids) with the node default, so a pass without them is not a no-op.
  const runtime = new RuncRuntime({
    stateDir,
    runDir: process.env.ACETATE_RUN_DIR || undefined,
    templates: new TemplateStore({ stateDir }),
    isolation: isolationSettingsFromEnv(process.env),
  });
  const cache = new ManifestCache();
  const first = await pass(runtime, dir, cache);
  await new Promise((resolve) => setTimeout(resolve, RACY_MS + 500));
  const warmup = Number(warmupText ?? 2);
  for (let i = 1; i < warmup; i++) await pass(runtime, dir, cache);
  const samples: PassSample[] = [];
  for (let i = 0; i < Number(passesText ?? 10); i++) samples.push(await pass(runtime, dir, cache));
  process.stdout.write(`${JSON.stringify({ first, samples })}\n`);
}

await main();
