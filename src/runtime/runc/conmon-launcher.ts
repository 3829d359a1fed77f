/**
 * One launcher process per runtime (native/acetate-launch.c) starts every conmon, from inside the
 * conmons' cgroup (conmon-cgroup.ts): each conmon is born there instead of being moved there.
 *
 * Why: a move into a cgroup waits in the kernel for an RCU grace period (cgroup_threadgroup_rwsem)
 * when no move happened just before (5-30 ms on the test node), and Node's spawn() of each conmon
 * blocked acetate's one thread for a few ms. The launcher is moved once, when it starts; its
 * children inherit the cgroup. Measured: a few % per start (runc's own moves of the container then
 * pay the grace period, as the bare `runc run` loop does: docs/supervision.md).
 *
 * Lifetime: started at the first launch, ended when its stdin closes (acetate exiting) or by
 * stop(), which the runtime calls when a stop or removal leaves nothing else in the conmons'
 * cgroup, so that the cgroup can go. A launcher that ended or died is started again at the next
 * launch; every answer a launch waits for is given before the launcher ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../util/package-root.js';

/** dist/native/acetate-launch, built from native/acetate-launch.c by scripts/build-native.sh. */
export const LAUNCH_HELPER = path.join(PACKAGE_ROOT, 'dist', 'native', 'acetate-launch');

/** The launcher's limits per request (acetate-launch.c: MAX_REQUEST, MAX_FIELDS). */
const MAX_REQUEST_BYTES = 1 << 20;
const MAX_FIELDS = 4096;
/** The first conmon process exits within milliseconds of its launch; a launcher silent this long is stuck. */
export const LAUNCH_TIMEOUT_MS = 30_000;

export interface LaunchRequest {
  /** Absolute path of the program (argv[0] too). */
  program: string;
  args: readonly string[];
  /** The program's whole environment. */
  env: Readonly<Record<string, string>>;
  /** Its stdout and stderr (created 0600, truncated). */
  out: string;
  /** Given to it as fd 3 (created 0600 when missing, not truncated). */
  fd3: string;
}

/** How the first process of a launch ended: its exit code, or the signal that ended it. */
export type LaunchEnd = { code: number } | { signal: number };

export class LauncherError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LauncherError';
  }
}

interface Waiting {
  resolve: (end: LaunchEnd) => void;
  reject: (err: Error) => void;
}

/** One launcher process and the launches waiting on it: a launcher that ends fails only its own. */
class LauncherProcess {
  readonly waiting = new Map<number, Waiting>();
  private lineBuf = '';

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => this.onOutput(text));
    child.stdin!.on('error', () => undefined); // its end tells ('close' below)
    // 'close', not 'exit': every line it wrote has been read by then.
    child.once('close', (code, signal) => {
      const err = new LauncherError(`the conmon launcher exited (${code ?? signal})`);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  get ended(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  send(id: number, fields: readonly string[], w: Waiting): void {
    this.waiting.set(id, w);
    this.child.stdin!.write(`${[String(id), ...fields].join('\0')}\0`);
  }

  private onOutput(text: string): void {
    this.lineBuf += text;
    let nl: number;
    while ((nl = this.lineBuf.indexOf('\n')) >= 0) {
      const line = this.lineBuf.slice(0, nl);
      this.lineBuf = this.lineBuf.slice(nl + 1);
      // `ID exit CODE`, `ID signal N`, `ID error REASON WITH SPACES`.
      const a = line.indexOf(' ');
      const b = line.indexOf(' ', a + 1);
      const id = Number(line.slice(0, a));
      const what = line.slice(a + 1, b);
      const detail = line.slice(b + 1);
      const w = this.waiting.get(id);
      if (a < 0 || b < 0 || !w) continue;
      this.waiting.delete(id);
      if (what === 'exit') w.resolve({ code: Number(detail) });
      else if (what === 'signal') w.resolve({ signal: Number(detail) });
      else w.reject(new LauncherError(`the conmon launcher could not start it: ${detail}`));
    }
  }
}

export class ConmonLauncher {
  private current?: LauncherProcess;
  private starting?: Promise<LauncherProcess>;
  private nextId = 1;

  /** `place` moves the new launcher where its children must be born (before any request is sent). */
  constructor(private readonly opts: { place: (pid: number) => Promise<void>; helper?: string }) {}

  /** The launcher's pid while one runs. */
  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  /**
   * Starts `req.program` from the launcher; resolves when that first process ends. A launcher that
   * gives no answer within `timeoutMs` (stopped, or stuck) is killed: this launch and every other
   * one waiting on it fail, and the next launch starts a new launcher. That timer is also what
   * keeps Node's loop alive while the answer is awaited (the launcher's pipes are unref'd).
   */
  async launch(req: LaunchRequest, timeoutMs = LAUNCH_TIMEOUT_MS): Promise<LaunchEnd> {
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    const fields = [req.out, req.fd3, String(req.args.length + 1), req.program, ...req.args, String(env.length), ...env];
    if (fields.some((f) => f.includes('\0'))) throw new LauncherError('a launch argument contains a NUL byte');
    const bytes = fields.reduce((n, f) => n + Buffer.byteLength(f) + 1, 24);
    if (fields.length + 1 > MAX_FIELDS || bytes > MAX_REQUEST_BYTES)
      throw new LauncherError(`a launch over the launcher's limits (${MAX_FIELDS} fields, ${MAX_REQUEST_BYTES} bytes)`);
    let p = await this.running();
    // stop() forgot this one while it was starting: a new one, not one whose stdin is ending.
    for (let tries = 0; p !== this.current && tries < 3; tries++) p = await this.running();
    const id = this.nextId++;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<LaunchEnd>((resolve, reject) => {
        p.send(id, fields, { resolve, reject });
        timer = setTimeout(() => {
          reject(new LauncherError(`the conmon launcher (pid ${p.child.pid}) gave no answer within ${timeoutMs} ms: killed`));
          if (this.current === p) this.current = undefined;
          p.child.kill('SIGKILL');
        }, timeoutMs);
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends the launcher once it has answered what it was asked (what it started runs on). A launch
   * that begins meanwhile starts a new launcher: this one is forgotten first.
   */
  async stop(): Promise<void> {
    const p = this.current ?? (await this.starting?.catch(() => undefined));
    if (this.current === p) this.current = undefined;
    if (!p || p.ended) return;
    const gone = new Promise<void>((resolve) => p.child.once('close', () => resolve()));
    p.child.stdin!.end();
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }

  private running(): Promise<LauncherProcess> {
    if (this.current && !this.current.ended) return Promise.resolve(this.current);
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<LauncherProcess> {
    const helper = this.opts.helper ?? LAUNCH_HELPER;
    const child = spawn(helper, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const p = new LauncherProcess(child);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new LauncherError(`cannot start ${helper}: ${err.message}`, { cause: err })));
    });
    try {
      await this.opts.place(child.pid!);
      // Placed, but gone meanwhile (a zombie's pid can be written too): not one to send requests to.
      if (p.ended) throw new Error(`it exited (${child.exitCode ?? child.signalCode})`);
    } catch (err) {
      child.kill('SIGKILL');
      throw new LauncherError(`cannot place the conmon launcher: ${(err as Error).message}`, { cause: err });
    }
    // Nothing keeps acetate alive for the launcher's sake: a launch waiting for its answer does,
    // by its time limit's timer (launch()).
    child.unref();
    (child.stdout as unknown as { unref(): void }).unref();
    (child.stdin as unknown as { unref(): void }).unref();
    this.current = p;
    return p;
  }
}
