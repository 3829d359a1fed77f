/**
 * Measuring commands on the node: wall time, and CPU time of the command and everything it
 * starts (through a cpuacct cgroup of its own, so conmon, runc, mount... all count, while the
 * containers' own processes, which runc moves to their cgroups, do not).
 */
import { spawn } from 'node:child_process';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const CPUACCT = '/sys/fs/cgroup/cpuacct';

export interface Measured {
  code: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** CPU of the command and all its descendants (not the containers): cpuacct.usage delta. */
  cpuMs: number;
  /** For the acetate CLI: the node process's own CPU (from the cpu-report preload). */
  ownCpuMs?: number;
  stdout: string;
  stderr: string;
}

/** A cpuacct cgroup the benchmark puts each measured command in. */
export class CpuGroup {
  readonly dir: string;
  constructor(name: string) {
    this.dir = path.join(CPUACCT, name);
  }
  get available(): boolean {
    return existsSync(CPUACCT);
  }
  async create(): Promise<void> {
    if (this.available) await mkdir(this.dir, { recursive: true });
  }
  async usageNs(): Promise<number> {
    if (!this.available) return NaN;
    return Number((await readFile(path.join(this.dir, 'cpuacct.usage'), 'utf8')).trim());
  }
  /** Moves whatever is left (e.g. conmon monitors of destroyed containers) to the root, removes the group. */
  async remove(): Promise<void> {
    if (!existsSync(this.dir)) return;
    for (let i = 0; i < 50; i++) {
      const procs = (await readFile(path.join(this.dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      for (const p of procs) await writeFile(path.join(CPUACCT, 'cgroup.procs'), p).catch(() => undefined);
      try {
        await rmdir(this.dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  group?: CpuGroup;
  /** Node CLI: file the cpu-report preload writes the process's own CPU to. */
  cpuFile?: string;
  timeoutMs?: number;
}

/** Runs file+args in the cpu group (via a shell that moves itself there, then execs). */
export async function measure(file: string, args: string[], opts: RunOptions = {}): Promise<Measured> {
  const g = opts.group;
  const before = g ? await g.usageNs() : NaN;
  if (opts.cpuFile) await rm(opts.cpuFile, { force: true });
  const t0 = performance.now();
  const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    const argv = g?.available ? ['-c', `echo $$ > ${g.dir}/cgroup.procs && exec "$0" "$@"`, file, ...args] : ['-c', 'exec "$0" "$@"', file, ...args];
    const child = spawn('/bin/sh', argv, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const wallMs = performance.now() - t0;
  const after = g ? await g.usageNs() : NaN;
  let ownCpuMs: number | undefined;
  if (opts.cpuFile) {
    const r = JSON.parse(await readFile(opts.cpuFile, 'utf8').catch(() => 'null')) as { user: number; system: number } | null;
    if (r) ownCpuMs = (r.user + r.system) / 1000;
  }
  return { ...res, wallMs, cpuMs: (after - before) / 1e6, ...(ownCpuMs !== undefined ? { ownCpuMs } : {}) };
}

export async function vmRssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Proportional set size (shared pages divided among their users): the fair per-process share. */
export async function pssBytes(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const m = /^Pss:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** utime+stime of a live process (ms). */
export async function procCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const tick = 1000 / 100; // USER_HZ
  // fields 14,15 utime stime; 16,17 cutime cstime (rest[0] is field 3)
  return (Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) * tick;
}

/** Pids whose command line's first word ends with `name` and whose arguments include `needle`. */
export async function findProcs(name: string, needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const args = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0]?.endsWith(name) && args.some((a) => a.includes(needle))) out.push(Number(e));
  }
  return out;
}

export function machine(): { cpus: number; cpuModel: string; memGiB: number; kernel: string; node: string } {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
}

/**
 * What creating one small file costs in `dir` (µs, median of 5 rounds of 100 create + rename, as
 * acetate writes its records): the filesystem's part of every figure. Cleans up after itself.
 */
export async function fileCreateMicros(dir: string): Promise<number> {
  const probe = await mkdtemp(path.join(dir, '.acetate-bench-probe-'));
  try {
    const rounds: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 100; i++) {
        writeFileSync(path.join(probe, `${r}-${i}.tmp`), '{}');
        renameSync(path.join(probe, `${r}-${i}.tmp`), path.join(probe, `${r}-${i}`));
      }
      rounds.push(Number(process.hrtime.bigint() - t0) / 1000 / 100);
    }
    rounds.sort((a, b) => a - b);
    return Math.round(rounds[2]!);
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
}

/** Disk usage of a path in bytes (du -s --block-size=1: allocated blocks, what the disk loses). */
export async function duBytes(p: string): Promise<number> {
  const r = await measure('du', ['-s', '--block-size=1', p]);
  return Number(r.stdout.split(/\s+/)[0]);
}
