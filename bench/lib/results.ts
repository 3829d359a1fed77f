/**
 * What the main benchmarks (create, noop, latency, rss) record: the shape of
 * bench/results/results.json (read back by --from, and by README/docs through results.md).
 */
import type { BenchConfig } from './options.js';
import type { ProfileSummary } from './profile.js';
import type { machine } from './sys.js';

export interface OpRow {
  op: 'create' | 'destroy';
  n: number;
  variant: string;
  samplesMs: number[];
  medianMs: number;
  /** CPU (ms) per container of the command and everything it started, median. */
  cpuPerContainerMs: number;
  /** acetate only: the node process's own CPU per container. */
  ownCpuPerContainerMs?: number;
  ratio?: number;
}

export interface NoopRow {
  n: number;
  passes: number;
  cpuMs: number;
  cpuP90Ms: number;
  /** The process's first pass, caches empty (as a one-shot `acetate apply`, without start-up). */
  firstCpuMs?: number;
  wallMs: number;
  loadCpuMs: number;
  listCpuMs: number;
  planCpuMs: number;
  runcListCpuMs: number;
  runcListWallMs: number;
}

export interface LatencyResult {
  n: number;
  edits: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  failures: number;
  detectMs: number;
  runcUpdateMs: number;
  samplesMs: number[];
}

export interface OverheadResult {
  n: number;
  conmonRssBytes: number;
  conmonPssBytes: number;
  initRssBytes: number;
  initPssBytes: number;
  privateAreaBytes: number;
  containerDirBytes: number;
  runDirBytes?: number;
  createAt8Ms: number;
}

export interface Results {
  startedAt: string;
  durationS: number;
  mode: 'full' | 'quick';
  machine: ReturnType<typeof machine> & {
    runc: string;
    conmon: string;
    /** Where the benchmark's directories were, and what creating a small file cost there and in /tmp (µs). */
    workDir?: string;
    fileCreateUs?: { workDir: number; tmp: number };
    /** Where the run dirs were (acetate's --run-dir, the bare loop's runc root and bundles), and on what. */
    runRoot?: string;
    runRootFs?: string;
  };
  ops: OpRow[];
  noop: NoopRow[];
  loop: { n: number; windowS: number; resync: string; cpuMsPerSecond: number; cpuMsPerResync: number; rssBytes: number }[];
  latency?: LatencyResult;
  rss: { n: number; medianBytes: number; maxBytes: number }[];
  overhead?: OverheadResult;
  profiles: Record<string, ProfileSummary>;
  notRun: string[];
}

export function emptyResults(mode: Results['mode'], host: ReturnType<typeof machine>): Results {
  return {
    startedAt: new Date().toISOString(),
    durationS: 0,
    mode,
    machine: { ...host, runc: '', conmon: '' },
    ops: [],
    noop: [],
    loop: [],
    rss: [],
    profiles: {},
    notRun: [],
  };
}

/** What a benchmark driver gets: the configuration, the sections asked for, where to record. */
export interface RunContext {
  cfg: BenchConfig;
  only: ReadonlySet<string>;
  results: Results;
}
