/**
 * A long-running acetate command (`acetate run`) as a child process, as a user starts it: what it
 * printed (stdout as JSON log lines, and as text), its stderr and its exit. runCli (cli.ts) is for
 * the commands that end by themselves.
 */
import type { ChildProcess } from 'node:child_process';
import { startCli } from './cli.js';

/** One line acetate logged on stdout (--log-format json); a line that is not JSON is { level: 'raw', message }. */
export interface LogLine {
  level: string;
  message: string;
  timestamp?: string;
  container?: string;
  action?: string;
  result?: string;
  metricsUrl?: string;
  keys?: string[];
  [k: string]: unknown;
}

export interface CliProcessOptions {
  stateDir: string;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** What runs: default dist/cli/main.js under this node; bin/acetate (BIN) to run what a user installs. */
  entry?: string;
  /** Cgroup dirs it runs in from the start (a systemd unit's cgroup, modelled). */
  cgroups?: readonly string[];
}

/** `acetate run` flags that make a test wait little: metrics on a free loopback port, short resync, process poll, relist and debounce. */
export function quickRunFlags(o: { resync?: string; relist?: string } = {}): string[] {
  return ['--metrics-addr', '127.0.0.1:0', '--resync', o.resync ?? '2s', '--process-poll', '500ms', '--relist', o.relist ?? '2s', '--debounce', '100ms'];
}

export class CliProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  /** The metrics URL, once a log line named it. */
  url?: string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], opts: CliProcessOptions) {
    const started = startCli(args, opts); // spawned in one place (cli.ts); here its log lines are parsed
    this.child = started.child;
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(parseLine(line));
        this.url ??= this.lines.at(-1)!.metricsUrl;
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // 'exit', not the 'close' of started.done: after a SIGTERM its containers live on, and a test
    // must not depend on whether they hold a copy of the pipes.
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** True once a log line's message matched. */
  logged(re: RegExp): boolean {
    return this.lines.some((l) => re.test(String(l.message)));
  }

  /** Sends signal (SIGTERM: acetate stops, containers keep running) unless it has exited, and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running()) this.child.kill(signal);
    return this.exit;
  }
}

function parseLine(line: string): LogLine {
  try {
    const v: unknown = JSON.parse(line);
    if (v !== null && typeof v === 'object') return v as LogLine;
  } catch {
    // not JSON: text logs, or a stray print
  }
  return { level: 'raw', message: line };
}
