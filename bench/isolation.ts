/**
 * What isolation costs at create (issue 11): N containers created with `acetate apply
 * --concurrency 1` against the bare loop (overlay + `runc run -d`) given the SAME settings in its
 * config.json, one pair per variant, medians over repetitions, in one run:
 *   default      host template, Docker's seccomp profile, the host template's masks
 *   unconfined   host template, seccompProfile Unconfined, masks        (seccomp's cost: default − this)
 *   imported     busybox template, seccomp                              (the reference for userns)
 *   userns       busybox template, seccomp, hostUsers: false            (userns' cost: this − imported)
 * The template's one-time shift to the id range is measured apart (it happens at its first use).
 * Writes <out>/isolation.json and isolation.md; `npm run bench -- --only isolation` runs only this.
 */
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { baselineConfigTemplate, containerYaml, defaultIsolation, getWorkRoot, tmpDir } from './lib/workload.js';
import { median, round } from './lib/stats.js';
import type { CpuGroup, Measured, RunOptions } from './lib/sys.js';
import { makeBusyboxRootfs } from './lib/busybox-rootfs.js';
import { shiftTree, userNamespaceFor, type IdRange } from '../src/runtime/walls/userns.js';
import { DEFAULT_USERNS_POOL, RANGE_SIZE } from '../src/runtime/walls/id-pool.js';
import { exec } from '../src/util/exec.js';

/** The range the one unprivileged container of the state dir gets: the pool's first. */
const DEFAULT_USERNS_RANGE = { hostID: DEFAULT_USERNS_POOL.hostID, size: RANGE_SIZE };

export interface BenchInstance {
  stateDir: string;
  runDir: string;
  dir: string;
  env: { ACETATE_RUN_DIR: string };
  cleanup: () => Promise<void>;
}

/** What run.ts lends this section (its helpers, so both sides are measured the same way). */
export interface IsolationBenchKit {
  newInstance(): Promise<BenchInstance>;
  acetate(inst: BenchInstance, args: string[]): Promise<Measured>;
  listJson(inst: BenchInstance): Promise<{ name: string; phase: string }[]>;
  measure(file: string, args: string[], opts?: RunOptions): Promise<Measured>;
  cpuGroup: CpuGroup;
  onCleanup(fn: () => Promise<void>): () => Promise<void>;
  log(m: string): void;
  runRoot: string;
  baselineDir: string;
  n: number;
  reps: number;
  out: string;
}

type Variant = 'default' | 'unconfined' | 'imported' | 'userns';
const VARIANTS: Variant[] = ['default', 'unconfined', 'imported', 'userns'];

export interface IsolationRow {
  variant: Variant;
  n: number;
  bareMs: number[];
  acetateMs: number[];
  bareMedianMs: number;
  acetateMedianMs: number;
  ratio: number;
}

function manifests(v: Variant, n: number): string {
  const template = v === 'imported' || v === 'userns' ? 'bb' : 'host';
  const sc =
    v === 'unconfined' ? '  securityContext: { seccompProfile: { type: Unconfined } }\n' : v === 'userns' ? '  securityContext: { hostUsers: false }\n' : '';
  return Array.from({ length: n }, (_, i) => containerYaml(`i${i}`, { template, extra: sc })).join('---\n');
}

/**
 * The bare loop's template owned by the range: a chowned copy made once (runc 1.1.5 cannot mount
 * it idmapped); acetate mounts the layers idmapped at each start instead (src/runtime/walls/idmap.ts),
 * a cost the comparison shows.
 */
async function shiftedCopy(rootfs: string, range: IdRange): Promise<string> {
  const target = `${rootfs}-userns`;
  await exec('cp', ['-a', '--', rootfs, target]);
  await shiftTree(target, 0, range.hostID, range.size);
  return target;
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

export async function isolationBenchmark(kit: IsolationBenchKit): Promise<IsolationRow[]> {
  const { n, reps } = kit;
  const range = DEFAULT_USERNS_RANGE;
  // The containers' unprivileged root must walk to their private areas (README: User namespaces).
  const workRoot = getWorkRoot();
  const rootMode = (await stat(workRoot)).mode & 0o7777;
  await chmod(workRoot, 0o711);
  const restore = kit.onCleanup(() => chmod(workRoot, rootMode));
  const shared = await tmpDir('acetate-bench-iso-');
  await chmod(shared, 0o711);
  const removeShared = kit.onCleanup(() => rm(shared, { recursive: true, force: true }));
  const rootfs = await makeBusyboxRootfs(path.join(shared, 'bb', 'rootfs'));
  const t0 = performance.now();
  const shifted = await shiftedCopy(rootfs, range);
  const shiftMs = round(performance.now() - t0, 1);
  kit.log(`isolation: the bare loop's busybox template shifted to ids ${range.hostID}+ in ${shiftMs} ms (acetate mounts it idmapped instead)`);

  const samples = new Map(VARIANTS.map((v) => [v, { bare: [] as number[], acetate: [] as number[] }]));
  try {
    for (let rep = 1; rep <= reps; rep++) {
      for (const v of VARIANTS) {
        samples.get(v)!.bare.push(await bare(kit, v, n, rootfs, shifted));
        samples.get(v)!.acetate.push(await withAcetate(kit, v, n, rootfs));
        const s = samples.get(v)!;
        kit.log(`isolation N=${n} rep ${rep} ${v}: bare loop ${s.bare.at(-1)} ms, acetate ${s.acetate.at(-1)} ms`);
      }
    }
  } finally {
    await removeShared();
    await restore();
  }
  const rows: IsolationRow[] = VARIANTS.map((v) => {
    const s = samples.get(v)!;
    const b = median(s.bare);
    const a = median(s.acetate);
    return { variant: v, n, bareMs: s.bare, acetateMs: s.acetate, bareMedianMs: b, acetateMedianMs: a, ratio: round(a / b, 2) };
  });
  await writeFile(
    path.join(kit.out, 'isolation.json'),
    `${JSON.stringify({ startedAt: new Date().toISOString(), n, reps, templateShiftMs: shiftMs, rows }, null, 2)}\n`,
  );
  await writeFile(path.join(kit.out, 'isolation.md'), markdown(rows, shiftMs, reps));
  return rows;
}

/** The bare loop with the variant's settings in its config.json; returns wall ms for N. */
async function bare(kit: IsolationBenchKit, v: Variant, n: number, rootfs: string, shifted: string): Promise<number> {
  const root = await tmpDir('acetate-bench-b-');
  await chmod(root, 0o711);
  const run = await mkdtemp(path.join(kit.runRoot, 'acetate-bench-b-'));
  const work = path.join(root, 'w');
  const userns = v === 'userns' ? userNamespaceFor(false, DEFAULT_USERNS_RANGE) : undefined;
  const extra =
    v === 'imported' || v === 'userns'
      ? { ...(await defaultIsolation(root, { masks: false })), ...(userns ? { userNamespace: userns } : {}) }
      : await defaultIsolation(root, { seccomp: v !== 'unconfined' });
  const { file } = await baselineConfigTemplate(root, extra);
  const env: Record<string, string> = { RUN_DIR: run };
  const cleanup = kit.onCleanup(async () => {
    await kit.measure('bash', [path.join(kit.baselineDir, 'cleanup.sh'), work, file], { env });
    await rm(root, { recursive: true, force: true });
    await rm(run, { recursive: true, force: true });
  });
  try {
    // create.sh mounts lower=/ (the host template); the imported variants go through
    // create-userns.sh: the same steps with the template as lower and the private area's owner.
    const imported = v === 'imported' || v === 'userns';
    if (imported) Object.assign(env, { LOWER: v === 'userns' ? shifted : rootfs, OWNER: v === 'userns' ? String(DEFAULT_USERNS_RANGE.hostID) : '0' });
    const c = await kit.measure('bash', [path.join(kit.baselineDir, imported ? 'create-userns.sh' : 'create.sh'), work, String(n), file], {
      group: kit.cpuGroup,
      env,
    });
    check(c.code === 0, `baseline ${v} create failed: ${c.stderr}`);
    const d = await kit.measure('bash', [path.join(kit.baselineDir, 'destroy.sh'), work, file], { env });
    check(d.code === 0, `baseline ${v} destroy failed: ${d.stderr}`);
    check(!existsSync(path.join(work, 'c')) || (await readdir(path.join(work, 'c'))).length === 0, 'baseline: destroy left containers');
    return round(c.wallMs);
  } finally {
    await cleanup();
  }
}

/** acetate apply --concurrency 1 of N containers of the variant; returns wall ms. */
async function withAcetate(kit: IsolationBenchKit, v: Variant, n: number, rootfs: string): Promise<number> {
  const inst = await kit.newInstance();
  try {
    if (v === 'imported' || v === 'userns') {
      const imp = await kit.acetate(inst, ['template', 'import', 'bb', rootfs]);
      check(imp.code === 0, `template import failed: ${imp.stderr}`);
    }
    await writeFile(path.join(inst.dir, 'containers.yaml'), manifests(v, n));
    const c = await kit.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '1']);
    check(c.code === 0, `acetate ${v} apply failed: ${c.stderr}\n${c.stdout.slice(-2000)}`);
    const got = await kit.listJson(inst);
    check(got.length === n && got.every((x) => x.phase === 'Running'), `acetate ${v}: ${got.filter((x) => x.phase === 'Running').length}/${n} running`);
    await rm(path.join(inst.dir, 'containers.yaml'));
    const d = await kit.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty']);
    check(d.code === 0, `acetate ${v} destroy failed: ${d.stderr}`);
    return round(c.wallMs);
  } finally {
    await inst.cleanup();
  }
}

function markdown(rows: IsolationRow[], shiftMs: number, reps: number): string {
  const by = new Map(rows.map((r) => [r.variant, r]));
  const per = (ms: number, n: number) => round(ms / n, 1);
  const cost = (a: Variant, b: Variant, side: 'bareMedianMs' | 'acetateMedianMs') => per(by.get(a)![side] - by.get(b)![side], by.get(a)!.n);
  const lines = [
    `# Isolation at create (N=${rows[0]!.n}, --concurrency 1, median of ${reps})`,
    '',
    'Each variant side by side with the bare loop (overlay + `runc run -d`) given the same settings in its config.json.',
    '',
    '| variant | bare loop | acetate | ratio |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.variant} | ${r.bareMedianMs} ms (${per(r.bareMedianMs, r.n)} ms/container) | ${r.acetateMedianMs} ms (${per(r.acetateMedianMs, r.n)} ms/container) | ${r.ratio.toFixed(2)}× |`,
    ),
    '',
    `- seccomp (Docker's profile) per container: bare loop ${cost('default', 'unconfined', 'bareMedianMs')} ms, acetate ${cost('default', 'unconfined', 'acetateMedianMs')} ms`,
    `- user namespace per container: bare loop ${cost('userns', 'imported', 'bareMedianMs')} ms, acetate ${cost('userns', 'imported', 'acetateMedianMs')} ms`,
    `- shifting the busybox template to the id range, once per template: ${shiftMs} ms`,
    '',
  ];
  return lines.join('\n');
}
