/**
 * `npm run bench -- [options]`: the command line (Node's util.parseArgs, strict: an unknown option
 * or section is an error rather than a run that silently measures something else), and the sizes
 * and repetitions a full or quick run uses.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

/** Every section --only accepts. servers, probes and git run alone (bench/servers.ts, bench/probes.ts, bench/git.ts); the others in this order. */
export const SECTIONS = [
  'create',
  'noop',
  'latency',
  'rss',
  'density',
  'isolation',
  'userns',
  'network',
  'images',
  'pull',
  'disk',
  'servers',
  'probes',
  'git',
] as const;
export type Section = (typeof SECTIONS)[number];
/** What a run without --only measures: all but servers, probes and git. */
export const DEFAULT_SECTIONS: readonly Section[] = SECTIONS.filter((s) => s !== 'servers' && s !== 'probes' && s !== 'git');

/** The density benchmark's N in a normal run, and with --quick. */
export const DEFAULT_DENSITY = 200;
export const QUICK_DENSITY = 50;

export const USAGE = `Usage: npm run bench -- [options]   (or: node dist/bench/run.js [options]; as root)

acetate's benchmarks against the bare loop (overlay mount + runc run -d per container).
Results: bench/results/*.md, *.json, chart.svg. Everything created is removed, also on failure or Ctrl-C.

Options:
  --quick              smaller N and fewer repetitions (also ACETATE_BENCH_QUICK=1)
  --only LIST          comma-separated sections: ${SECTIONS.join(',')}
                       (default all but servers, probes and git; isolation: bench/isolation.ts, network: bench/network.ts,
                       userns: bench/userns.ts (unprivileged create, host template and image; its N the first of --sizes),
                       images: bench/images.ts, pull: bench/pull.ts (the image's MiB the first of --sizes),
                       disk: bench/disk.ts, servers: bench/servers.ts alone,
                       probes: bench/probes.ts alone, its N the first of --sizes, git: bench/git.ts alone)
  --out DIR            where results go (default bench/results)
  --sizes N[,N...]     only these N for create/destroy (e.g. 100 or 10,100); isolation, userns, network and
                       disk take the first as their N
  --work-dir DIR       where state dirs, work dirs and manifests go (default /var/lib/acetate-bench,
                       next to acetate's default state dir; removed at the end if empty)
  --run-root DIR       where run dirs go (acetate's --run-dir, the bare loop's runc root and bundles).
                       Default: under /run if it is a tmpfs, as on systemd hosts and Kubernetes nodes;
                       otherwise on a tmpfs the benchmark mounts for the run (and removes)
  --density N          only the density benchmark (bench/density.ts) with N containers (e.g. 2500);
                       the normal run measures it with ${DEFAULT_DENSITY} (--quick: ${QUICK_DENSITY}); it measures acetate's
                       default, a user namespace per container, against the bare loop with the same mappings
  --density-host-users the density benchmark in the old mode instead: containers with the node's ids
                       (ACETATE_HOST_USERS=true), the bare loop without mappings
  --from FILE          no measurement: re-render results.md and chart.svg from an earlier results.json
  -h, --help           this text
`;

export interface BenchOptions {
  help: boolean;
  /** Smaller N and fewer repetitions. With --from, the loaded results' mode decides instead. */
  quick: boolean;
  only: ReadonlySet<Section>;
  /** --sizes: only these N for create/destroy; the first is the N of isolation, network and disk. */
  sizes?: number[];
  /** Absolute. */
  out: string;
  workDir?: string;
  runRoot?: string;
  /** --from: an earlier results.json to re-render (absolute). */
  from?: string;
  /** The density benchmark's N (--density N; else the default or quick size). */
  density: number;
  /** --density-host-users: density measured with the node's ids (the old mode), not the default user namespaces. */
  densityHostUsers: boolean;
}

/** Throws an Error whose message is meant for the user (with the usage) on a bad command line. */
export function parseBenchArgs(argv: string[], opts: { env: NodeJS.ProcessEnv; packageRoot: string }): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      sizes: { type: 'string' },
      'work-dir': { type: 'string' },
      'run-root': { type: 'string' },
      from: { type: 'string' },
      density: { type: 'string' },
      'density-host-users': { type: 'boolean' },
    },
  });
  const quick = (values.quick ?? false) || opts.env.ACETATE_BENCH_QUICK === '1';
  const density = values.density === undefined ? undefined : Number(values.density);
  if (density !== undefined && !(Number.isSafeInteger(density) && density > 0))
    throw new Error(`--density: expected a number of containers such as 2500, got ${values.density}`);
  if (density !== undefined && values.only !== undefined) throw new Error('--density runs the density benchmark alone: give it without --only');
  const only = new Set(density !== undefined ? ['density' as const] : values.only === undefined ? DEFAULT_SECTIONS : parseSections(values.only));
  const densityHostUsers = values['density-host-users'] ?? false;
  if (densityHostUsers && !only.has('density'))
    throw new Error('--density-host-users: the density benchmark is not measured in this run (see --only, --density)');
  return {
    help: values.help ?? false,
    quick,
    only,
    density: density ?? (quick ? QUICK_DENSITY : DEFAULT_DENSITY),
    densityHostUsers,
    ...(values.sizes !== undefined ? { sizes: parseSizes(values.sizes) } : {}),
    out: path.resolve(values.out ?? path.join(opts.packageRoot, 'bench', 'results')),
    ...(values['work-dir'] !== undefined ? { workDir: path.resolve(values['work-dir']) } : {}),
    ...(values['run-root'] !== undefined ? { runRoot: path.resolve(values['run-root']) } : {}),
    ...(values.from !== undefined ? { from: path.resolve(values.from) } : {}),
  };
}

function parseSections(text: string): Section[] {
  const names = text.split(',').filter(Boolean);
  const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
  if (unknown.length || !names.length) throw new Error(`--only: expected sections among ${SECTIONS.join(',')}, got '${text}'`);
  return names as Section[];
}

function parseSizes(text: string): number[] {
  const sizes = text.split(',').map(Number);
  if (!sizes.every((n) => Number.isSafeInteger(n) && n > 0)) throw new Error(`--sizes: expected numbers such as 100 or 10,100, got ${text}`);
  return sizes;
}

/** How much a run measures: containers per create/destroy size and repetitions, the loop benchmarks' sizes. */
export interface BenchConfig {
  sizes: number[];
  reps: Record<number, number>;
  concurrencies: number[];
  /** Containers of the loop benchmarks (no-op pass, RSS, overhead): big first, then mid. */
  big: number;
  mid: number;
  /** File edits of the latency benchmark. */
  edits: number;
  noopPasses: number;
  /** Seconds of each RSS/CPU window under acetate run. */
  rssWindowS: number;
  resync: string;
}

export function benchConfig(quick: boolean, sizes?: number[]): BenchConfig {
  const cfg: BenchConfig = quick
    ? { sizes: [10, 50], reps: { 10: 3, 50: 2 }, concurrencies: [1, 8], big: 200, mid: 50, edits: 20, noopPasses: 5, rssWindowS: 12, resync: '5s' }
    : {
        sizes: [10, 100, 500],
        reps: { 10: 5, 100: 3, 500: 2 },
        concurrencies: [1, 8],
        big: 1000,
        mid: 100,
        edits: 50,
        noopPasses: 10,
        rssWindowS: 31,
        resync: '10s',
      };
  if (sizes) cfg.sizes = sizes;
  return cfg;
}

/** The N of create's profile and of the targets: 100 when measured, else the largest size. */
export function referenceSize(cfg: BenchConfig): number {
  return cfg.sizes.includes(100) ? 100 : cfg.sizes[cfg.sizes.length - 1]!;
}
