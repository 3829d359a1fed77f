/**
 * The Git source's latency (`npm run bench -- --only git`; with --quick, fewer commits): from a
 * commit pushed to a local bare repository (file://) that changes one container's memory limit,
 * to the new limit in its cgroup, p50/p99, for
 *   - `acetate run --git` polling every 1 s,
 *   - `acetate run --git --interval 10m` with `POST /sync` right after the push (a CI step or hook),
 *   - the baseline: `acetate run -f DIR` with the same manifest written into the watched directory
 *     (what a git-sync checkout or an editor save costs: no Git at all).
 * Side by side in one run, one container each, the same edits. Writes bench/results/git.{md,json};
 * everything created (containers, repository, state dirs) is removed, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { cleanupStateDir } from './lib/leaks.js';
import { fmtMs, median, quantile, round } from './lib/stats.js';
import { measure } from './lib/sys.js';
import { tmpDir } from './lib/workload.js';
import { TestRepo } from './lib/git-repo.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const log = (m: string): void => console.log(`[bench git ${new Date().toISOString().slice(11, 19)}] ${m}`);
const cli = (stateDir: string, args: string[]) => measure(process.execPath, [CLI, '--state-dir', stateDir, ...args], { timeoutMs: 600_000 });

type Mode = 'poll-1s' | 'sync' | 'files-baseline';

interface Sample {
  mode: Mode;
  edits: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samplesMs: number[];
}

function manifestOf(memoryMi: number): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: gitbench }
spec:
  template: host
  command: [sleep, '1000000']
  terminationGracePeriodSeconds: 0
  resources: { memory: ${memoryMi}Mi }
`;
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function memoryLimitFile(pid: number): Promise<string> {
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.includes(':memory:'))!;
  return `/sys/fs/cgroup/memory${line.split(':')[2]}/memory.limit_in_bytes`;
}

async function sample(mode: Mode, edits: number): Promise<Sample> {
  const stateDir = await tmpDir('git-');
  const root = await tmpDir('git-r-');
  const repo = new TestRepo(path.join(root, 'repo'));
  const dir = path.join(root, 'manifests');
  let child: ChildProcess | undefined;
  try {
    await mkdir(dir);
    await repo.init();
    if (mode === 'files-baseline') await writeFile(path.join(dir, 'c.yaml'), manifestOf(64));
    else await repo.commit({ 'c.yaml': manifestOf(64) });
    const source = mode === 'files-baseline' ? ['-f', dir, '--debounce', '20ms'] : ['--git', repo.fileUrl, '--interval', mode === 'poll-1s' ? '1s' : '10m'];
    let url: string | undefined;
    child = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'run', ...source, '--metrics-addr', '127.0.0.1:0', '--log-format', 'json'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout!.on('data', (d: Buffer) => {
      url ??= /"metricsUrl":"([^"]+)"/.exec(d.toString())?.[1];
    });
    let pid = 0;
    await waitUntil(
      'the container running',
      async () => {
        const r = await cli(stateDir, ['get', 'gitbench', '-o', 'json']);
        pid = r.code === 0 ? ((JSON.parse(r.stdout) as { status: { pid?: number } }).status.pid ?? 0) : 0;
        return pid > 0 && url !== undefined;
      },
      60_000,
      200,
    );
    const limitFile = await memoryLimitFile(pid);
    const lat: number[] = [];
    for (let e = 0; e < edits; e++) {
      const mem = e % 2 === 0 ? 96 : 64;
      // From the moment the change exists (pushed, or written) to the limit in the cgroup.
      let t0: number;
      if (mode === 'files-baseline') {
        t0 = performance.now();
        await writeFile(path.join(dir, 'c.yaml'), manifestOf(mem));
      } else {
        await repo.commit({ 'c.yaml': manifestOf(mem) });
        t0 = performance.now();
        if (mode === 'sync') void fetch(`${url}/sync`, { method: 'POST' }).then((r) => r.text());
      }
      await waitUntil('the new limit', async () => (await readFile(limitFile, 'utf8')).trim() === String(mem * 1024 * 1024), 60_000, 5);
      lat.push(performance.now() - t0);
    }
    return { mode, edits, p50Ms: round(median(lat)), p99Ms: round(quantile(lat, 0.99)), maxMs: round(Math.max(...lat)), samplesMs: lat.map((v) => round(v)) };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await cleanupStateDir(stateDir).catch((err: unknown) => log(`cleanup of ${stateDir}: ${String(err)}`));
    await repo.stop();
    await rm(stateDir, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  }
}

export function markdown(r: { date: string; mode: string; loadAverage: number; samples: Sample[] }): string {
  const rows = r.samples.map((s) => `| ${s.mode} | ${s.edits} | ${fmtMs(s.p50Ms)} | ${fmtMs(s.p99Ms)} | ${fmtMs(s.maxMs)} |`);
  return `# Git source: commit → new memory limit in the cgroup

${r.date}, ${r.mode}, load average ${r.loadAverage} at the end (${os.cpus().length} CPUs). One container; each edit flips its memory limit (64Mi ↔ 96Mi). Time from the
pushed commit (or, for the baseline, the file written into a watched \`-f\` directory) to the
new value in memory.limit_in_bytes.

| mode | edits | p50 | p99 | max |
|---|---|---|---|---|
${rows.join('\n')}

- poll-1s: \`acetate run --git file://… --interval 1s\` (an \`ls-remote\` per second; a fetch and
  checkout only when the branch moved).
- sync: \`--interval 10m\` and \`POST /sync\` on the metrics address right after the push.
- files-baseline: \`acetate run -f DIR\`, the manifest written into DIR (no Git).
- A sync that finds a new commit runs four git processes (ls-remote, fetch, rev-parse, checkout)
  before the checkout is read and the container reconciled; on a loaded machine each costs
  tens to hundreds of ms, which is what separates the Git rows from the baseline.
`;
}

export async function gitBench(opts: { quick: boolean; out: string }): Promise<number> {
  const edits = opts.quick ? 6 : 20;
  const samples: Sample[] = [];
  for (const mode of ['files-baseline', 'sync', 'poll-1s'] as const) {
    log(`${mode}: ${edits} edits`);
    const s = await sample(mode, edits);
    log(`${mode}: p50 ${fmtMs(s.p50Ms)}, p99 ${fmtMs(s.p99Ms)}`);
    samples.push(s);
  }
  const results = { date: new Date().toISOString(), mode: opts.quick ? 'quick' : 'full', loadAverage: round(os.loadavg()[0]!, 1), samples };
  await mkdir(opts.out, { recursive: true });
  await writeFile(path.join(opts.out, 'git.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(opts.out, 'git.md'), markdown(results));
  log(`results in ${path.join(opts.out, 'git.md')}`);
  return 0;
}
