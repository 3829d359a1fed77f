/**
 * resources.disk benchmark (`npm run bench -- --only disk`), side by side in one run:
 *
 *   1. create N containers with a 64Mi disk: `acetate apply` (concurrency 1) vs the bare loop doing
 *      the same steps by hand (bench/baseline/create-disk.sh: truncate, mkfs.xfs, mount -o loop,
 *      overlay, runc run -d); then destroy both.
 *   2. grow latency, p50/p99: a live grow of a running container's disk (+4Mi each time) through
 *      acetate's runtime (updateResources: truncate, losetup -c, xfs_growfs, record) vs the three
 *      commands by hand on a bare image.
 *   3. disk allocated per fresh container (du of the sparse image and of the container's dir).
 *
 * Writes bench/results/disk.md and disk.json. Registered in run.ts with the helpers it shares.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RuncRuntime } from '../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../src/runtime/runc/templates.js';
import { snapshotLeaks } from './lib/leaks.js';
import { fmtMs, fmtRatio, median, quantile, round } from './lib/stats.js';
import { duBytes, measure, type Measured } from './lib/sys.js';
import { containerYaml, nameOf } from './lib/workload.js';

interface InstanceLike {
  stateDir: string;
  runDir: string;
  dir: string;
  env: { ACETATE_RUN_DIR: string };
  cleanup: () => Promise<void>;
}
interface BaselineLike {
  work: string;
  template: string;
  env: { RUN_DIR: string };
  cleanup: () => Promise<void>;
}

export interface DiskBenchContext<I extends InstanceLike = InstanceLike> {
  n: number;
  reps: number;
  grows: number;
  out: string;
  baselineDir: string;
  newInstance: () => Promise<I>;
  newBaseline: () => Promise<BaselineLike>;
  acetate: (inst: I, args: string[]) => Promise<Measured>;
  /** Runs a command in the benchmark's cpu group (bash scripts of the bare loop). */
  run: (file: string, args: string[], env: Record<string, string>) => Promise<Measured>;
  log: (m: string) => void;
}

export interface DiskResults {
  n: number;
  sizeMi: number;
  createMs: { acetate: number[]; bare: number[] };
  /** The same N without a disk limit, in the same repetitions: how loaded the machine was, and what the disk adds. */
  plainCreateMs: { acetate: number[]; bare: number[] };
  plainRatio: number;
  /** acetate/bare of each repetition (create with disks). */
  repRatios: number[];
  destroyMs: { acetate: number[]; bare: number[] };
  ratio: number;
  growMs: { acetate: { p50: number; p99: number; samples: number }; bare: { p50: number; p99: number; samples: number } };
  allocatedKiB: { acetateImage: number; acetateDir: number; bareImage: number; bareDir: number };
}

const SIZE_MI = 64;

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

async function growAcetate<I extends InstanceLike>(ctx: DiskBenchContext<I>, inst: I): Promise<number[]> {
  const rt = new RuncRuntime({ stateDir: inst.stateDir, runDir: inst.runDir, templates: new TemplateStore({ stateDir: inst.stateDir }) });
  const key = `default/${nameOf(0)}`;
  const c = await rt.get(key);
  check(c?.disk, 'acetate: the first container has no disk attached');
  const out: number[] = [];
  let size = c.disk.sizeBytes;
  for (let i = 0; i < ctx.grows; i++) {
    size += 4 * 2 ** 20;
    const t0 = performance.now();
    const r = await rt.updateResources(key, { ...c.applied.spec.resources, diskBytes: size });
    out.push(performance.now() - t0);
    check(r.limits.diskBytes === size && r.deferred.length === 0, `acetate grow: ${JSON.stringify(r)}`);
  }
  check((await rt.get(key))?.process.pid === c.process.pid, 'acetate grow: the pid changed');
  return out;
}

async function growBare<I extends InstanceLike>(ctx: DiskBenchContext<I>, b: BaselineLike): Promise<number[]> {
  const d = path.join(b.work, 'c', 'b0');
  const img = path.join(d, 'disk.img');
  const dev = (await measure('losetup', ['-j', img])).stdout.split(':')[0]!;
  check(dev.startsWith('/dev/loop'), `bare: no loop device for ${img}`);
  const out: number[] = [];
  let size = SIZE_MI * 2 ** 20;
  for (let i = 0; i < ctx.grows; i++) {
    size += 4 * 2 ** 20;
    const t0 = performance.now();
    for (const [f, a] of [
      ['truncate', ['-s', String(size), img]],
      ['losetup', ['-c', dev]],
      ['xfs_growfs', ['-d', path.join(d, 'disk')]],
    ] as const) {
      const m = await measure(f, [...a]);
      check(m.code === 0, `bare grow: ${f}: ${m.stderr}`);
    }
    out.push(performance.now() - t0);
  }
  return out;
}

export async function diskBenchmark<I extends InstanceLike>(ctx: DiskBenchContext<I>): Promise<DiskResults> {
  const res: DiskResults = {
    n: ctx.n,
    sizeMi: SIZE_MI,
    createMs: { acetate: [], bare: [] },
    plainCreateMs: { acetate: [], bare: [] },
    plainRatio: NaN,
    repRatios: [],
    destroyMs: { acetate: [], bare: [] },
    ratio: NaN,
    growMs: { acetate: { p50: NaN, p99: NaN, samples: 0 }, bare: { p50: NaN, p99: NaN, samples: 0 } },
    allocatedKiB: { acetateImage: NaN, acetateDir: NaN, bareImage: NaN, bareDir: NaN },
  };
  const growA: number[] = [];
  const growB: number[] = [];
  for (let rep = 1; rep <= ctx.reps; rep++) {
    await plainPair(ctx, res);
    const b = await ctx.newBaseline();
    try {
      const c = await ctx.run('bash', [path.join(ctx.baselineDir, 'create-disk.sh'), b.work, String(ctx.n), b.template, `${SIZE_MI}M`], b.env);
      check(c.code === 0, `bare create-disk failed: ${c.stderr}`);
      res.createMs.bare.push(round(c.wallMs));
      if (rep === 1) {
        res.allocatedKiB.bareImage = (await duBytes(path.join(b.work, 'c', 'b0', 'disk.img'))) / 1024;
        res.allocatedKiB.bareDir =
          (await measure('du', ['-s', '-x', '--block-size=1', path.join(b.work, 'c', 'b0')]).then((m) => Number(m.stdout.split(/\s+/)[0]))) / 1024;
        growB.push(...(await growBare(ctx, b)));
      }
      const d = await ctx.run('bash', [path.join(ctx.baselineDir, 'destroy.sh'), b.work, b.template], b.env);
      check(d.code === 0, `bare destroy failed: ${d.stderr}`);
      res.destroyMs.bare.push(round(d.wallMs));
      ctx.log(`disk N=${ctx.n} rep ${rep}: bare loop create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
    } finally {
      await b.cleanup();
    }
    const inst = await ctx.newInstance();
    try {
      await mkdir(inst.dir, { recursive: true });
      await writeFile(
        path.join(inst.dir, 'containers.yaml'),
        Array.from({ length: ctx.n }, (_, i) => containerYaml(nameOf(i), { diskMi: SIZE_MI })).join('---\n'),
      );
      const c = await ctx.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '1']);
      check(c.code === 0, `acetate apply (disk) failed: ${c.stderr}\n${c.stdout.slice(-2000)}`);
      res.createMs.acetate.push(round(c.wallMs));
      if (rep === 1) {
        const dir = path.join(inst.stateDir, 'containers', `default_${nameOf(0)}`);
        res.allocatedKiB.acetateImage = (await duBytes(path.join(dir, 'disk.img'))) / 1024;
        res.allocatedKiB.acetateDir = (await measure('du', ['-s', '-x', '--block-size=1', dir]).then((m) => Number(m.stdout.split(/\s+/)[0]))) / 1024;
        growA.push(...(await growAcetate(ctx, inst)));
      }
      await rm(path.join(inst.dir, 'containers.yaml'));
      const d = await ctx.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', '1']);
      check(d.code === 0, `acetate destroy (disk) failed: ${d.stderr}`);
      res.destroyMs.acetate.push(round(d.wallMs));
      const leaks = await snapshotLeaks(inst.stateDir, { runDir: inst.runDir });
      check(leaks.mounts.length + leaks.loops.length + leaks.containerDirs.length === 0, `acetate destroy left ${JSON.stringify(leaks)}`);
      ctx.log(`disk N=${ctx.n} rep ${rep}: acetate create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
      res.repRatios.push(round(c.wallMs / res.createMs.bare[res.createMs.bare.length - 1]!, 2));
    } finally {
      await inst.cleanup();
    }
  }
  res.ratio = round(median(res.createMs.acetate) / median(res.createMs.bare), 2);
  res.plainRatio = round(median(res.plainCreateMs.acetate) / median(res.plainCreateMs.bare), 2);
  const q = (xs: number[]) => ({ p50: round(quantile(xs, 0.5), 1), p99: round(quantile(xs, 0.99), 1), samples: xs.length });
  res.growMs = { acetate: q(growA), bare: q(growB) };
  await writeDiskResults(ctx.out, res);
  ctx.log(
    `disk: create ${ctx.n} with ${SIZE_MI}Mi disks ${fmtRatio(res.ratio)} the bare loop; grow p50/p99 ${res.growMs.acetate.p50}/${res.growMs.acetate.p99} ms (bare ${res.growMs.bare.p50}/${res.growMs.bare.p99} ms)`,
  );
  return res;
}

/** The same N without disks, acetate and the bare loop (create.sh), to read the disk figures against. */
async function plainPair<I extends InstanceLike>(ctx: DiskBenchContext<I>, res: DiskResults): Promise<void> {
  const b = await ctx.newBaseline();
  try {
    const c = await ctx.run('bash', [path.join(ctx.baselineDir, 'create.sh'), b.work, String(ctx.n), b.template], b.env);
    check(c.code === 0, `bare create failed: ${c.stderr}`);
    res.plainCreateMs.bare.push(round(c.wallMs));
    check((await ctx.run('bash', [path.join(ctx.baselineDir, 'destroy.sh'), b.work, b.template], b.env)).code === 0, 'bare destroy failed');
  } finally {
    await b.cleanup();
  }
  const inst = await ctx.newInstance();
  try {
    await mkdir(inst.dir, { recursive: true });
    await writeFile(path.join(inst.dir, 'containers.yaml'), Array.from({ length: ctx.n }, (_, i) => containerYaml(nameOf(i))).join('---\n'));
    const c = await ctx.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '1']);
    check(c.code === 0, `acetate apply failed: ${c.stderr}`);
    res.plainCreateMs.acetate.push(round(c.wallMs));
    await rm(path.join(inst.dir, 'containers.yaml'));
    check((await ctx.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', '1'])).code === 0, 'acetate destroy failed');
  } finally {
    await inst.cleanup();
  }
  ctx.log(`plain N=${ctx.n}: bare loop create ${fmtMs(res.plainCreateMs.bare.at(-1)!)}, acetate ${fmtMs(res.plainCreateMs.acetate.at(-1)!)}`);
}

async function writeDiskResults(out: string, r: DiskResults): Promise<void> {
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'disk.json'), `${JSON.stringify(r, null, 2)}\n`);
  const kib = (n: number) => `${Math.round(n)} KiB`;
  const md = `# resources.disk benchmark

${new Date().toISOString().slice(0, 10)}; N=${r.n} containers with \`disk: ${r.sizeMi}Mi\` (XFS on a loop device), ${r.createMs.acetate.length} repetition(s), medians.

| what | acetate | bare loop (same steps by hand) | ratio | target |
| --- | ---: | ---: | ---: | --- |
| create ${r.n} with disks (\`apply --concurrency 1\` vs create-disk.sh; per repetition ${r.repRatios.map(fmtRatio).join(', ')}) | ${fmtMs(median(r.createMs.acetate))} (${r.createMs.acetate.map(fmtMs).join(', ')}) | ${fmtMs(median(r.createMs.bare))} (${r.createMs.bare.map(fmtMs).join(', ')}) | ${fmtRatio(r.ratio)} | ≤ 1.2× ${r.ratio <= 1.2 ? 'met' : 'NOT MET'} |
| create ${r.n} without disks, same repetitions (create.sh) | ${fmtMs(median(r.plainCreateMs.acetate))} (${r.plainCreateMs.acetate.map(fmtMs).join(', ')}) | ${fmtMs(median(r.plainCreateMs.bare))} (${r.plainCreateMs.bare.map(fmtMs).join(', ')}) | ${fmtRatio(r.plainRatio)} | (reference) |
| what the disk adds per container | ${fmtMs((median(r.createMs.acetate) - median(r.plainCreateMs.acetate)) / r.n)} | ${fmtMs((median(r.createMs.bare) - median(r.plainCreateMs.bare)) / r.n)} | | |
| destroy ${r.n} | ${fmtMs(median(r.destroyMs.acetate))} | ${fmtMs(median(r.destroyMs.bare))} | ${fmtRatio(median(r.destroyMs.acetate) / median(r.destroyMs.bare))} | |
| live grow +4Mi, p50 / p99 (${r.growMs.acetate.samples} grows) | ${r.growMs.acetate.p50} / ${r.growMs.acetate.p99} ms | ${r.growMs.bare.p50} / ${r.growMs.bare.p99} ms | | |
| disk allocated by a fresh container's image | ${kib(r.allocatedKiB.acetateImage)} | ${kib(r.allocatedKiB.bareImage)} | | |
| disk allocated by its whole dir (on the node's filesystem) | ${kib(r.allocatedKiB.acetateDir)} | ${kib(r.allocatedKiB.bareDir)} | | |
`;
  await writeFile(path.join(out, 'disk.md'), md);
}
