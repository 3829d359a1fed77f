/**
 * 1 + 4: create N containers from one manifest change until all run, then destroy them: acetate
 * apply (concurrency 1 and 8) vs the bare loop (`runc run -d` per container with the config.json
 * acetate writes, bench/baseline/create.sh), each repetition checking that everything ran and nothing was left. Plus a V8
 * profile of acetate apply creating the reference N at concurrency 8.
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { BASELINE, check, runcCount, log, type Harness } from './lib/harness.js';
import { snapshotLeaks } from './lib/leaks.js';
import { summarizeProfile } from './lib/profile.js';
import type { OpRow, RunContext } from './lib/results.js';
import { fmtMs, median, round } from './lib/stats.js';
import { measure, type Measured } from './lib/sys.js';
import { containerYaml, tmpDir, writeOneFile } from './lib/workload.js';
import { acetateConfigTemplate, PROBE_NAME } from './lib/acetate-config.js';

export async function createDestroyBenchmark(ctx: RunContext, h: Harness): Promise<void> {
  const { cfg, results } = ctx;
  // The bare loop runs the very config acetate writes for the same container (lib/acetate-config.ts).
  const tpl = await acetateConfigTemplate(h, containerYaml(PROBE_NAME));
  for (const n of cfg.sizes) {
    const reps = cfg.reps[n] ?? 2;
    const rows = new Map<string, { create: Measured[]; destroy: Measured[]; cpuC: number[]; cpuD: number[]; ownC: number[]; ownD: number[] }>();
    const row = (v: string) => rows.get(v) ?? rows.set(v, { create: [], destroy: [], cpuC: [], cpuD: [], ownC: [], ownD: [] }).get(v)!;
    for (let rep = 1; rep <= reps; rep++) {
      // bare loop
      {
        const b = await h.newBaseline({ acetate: tpl });
        try {
          const c = await measure('bash', [path.join(BASELINE, 'create.sh'), b.work, String(n), b.template], { group: h.cpuGroup, env: b.env });
          check(c.code === 0, `baseline create failed: ${c.stderr}`);
          check((await runcCount(path.join(b.env.RUN_DIR, 'runc'))) === n, 'baseline: not all running');
          const d = await measure('bash', [path.join(BASELINE, 'destroy.sh'), b.work, b.template], { group: h.cpuGroup, env: b.env });
          check(d.code === 0, `baseline destroy failed: ${d.stderr}`);
          check(!existsSync(path.join(b.work, 'c')) || (await readdir(path.join(b.work, 'c'))).length === 0, 'baseline: destroy left containers');
          const r = row('bare loop');
          r.create.push(c);
          r.destroy.push(d);
          r.cpuC.push(c.cpuMs / n);
          r.cpuD.push(d.cpuMs / n);
          log(`N=${n} rep ${rep}: bare loop create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
        } finally {
          await b.cleanup();
        }
      }
      for (const conc of cfg.concurrencies) {
        const inst = await h.newInstance();
        try {
          await writeOneFile(inst.dir, n);
          const c = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', String(conc)]);
          check(c.code === 0, `acetate apply failed: ${c.stderr}\n${c.stdout.slice(-2000)}`);
          const got = await h.listJson(inst);
          check(got.length === n && got.every((x) => x.phase === 'Running'), `acetate: ${got.filter((x) => x.phase === 'Running').length}/${n} running`);
          await rm(path.join(inst.dir, 'containers.yaml'));
          const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', String(conc)]);
          check(d.code === 0, `acetate destroy failed: ${d.stderr}`);
          const leaks = await snapshotLeaks(inst.stateDir, { runDir: inst.runDir });
          check(leaks.mounts.length + leaks.runcStates.length + leaks.containerDirs.length === 0, `acetate destroy left ${JSON.stringify(leaks)}`);
          const r = row(`acetate c${conc}`);
          r.create.push(c);
          r.destroy.push(d);
          r.cpuC.push(c.cpuMs / n);
          r.cpuD.push(d.cpuMs / n);
          r.ownC.push((c.ownCpuMs ?? NaN) / n);
          r.ownD.push((d.ownCpuMs ?? NaN) / n);
          log(`N=${n} rep ${rep}: acetate c${conc} create ${fmtMs(c.wallMs)}, destroy ${fmtMs(d.wallMs)}`);
        } finally {
          await inst.cleanup();
        }
      }
    }
    const base = rows.get('bare loop')!;
    for (const [variant, r] of rows) {
      for (const op of ['create', 'destroy'] as const) {
        const samples = r[op].map((m) => round(m.wallMs));
        const own = op === 'create' ? r.ownC : r.ownD;
        const out: OpRow = {
          op,
          n,
          variant,
          samplesMs: samples,
          medianMs: median(samples),
          cpuPerContainerMs: round(median(op === 'create' ? r.cpuC : r.cpuD), 1),
          ...(own.length ? { ownCpuPerContainerMs: round(median(own), 1) } : {}),
        };
        out.ratio = round(out.medianMs / median(base[op].map((m) => m.wallMs)), 2);
        results.ops.push(out);
      }
    }
  }
}

/** Where acetate apply's CPU goes, creating mid-size N at concurrency 8 (V8 profile). */
export async function createProfile(ctx: RunContext, h: Harness, n: number): Promise<void> {
  const { results } = ctx;
  const inst = await h.newInstance();
  const profDir = await tmpDir('acetate-bench-prof-');
  try {
    await writeOneFile(inst.dir, n);
    const c = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', '8'], ['--cpu-prof', '--cpu-prof-dir', profDir]);
    check(c.code === 0, c.stderr);
    const prof = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
    if (prof) results.profiles[`create ${n} (acetate apply, concurrency 8)`] = await summarizeProfile(path.join(profDir, prof));
  } finally {
    await inst.cleanup();
    await rm(profDir, { recursive: true, force: true });
  }
}
