/**
 * One launcher process per runtime (native/acetate-launch.c) starts every conmon, from inside the
 * conmons' cgroup (conmon-cgroup.ts): each conmon is born there instead of being moved there.
 *
 * Why: a move into a cgroup waits for an RCU grace period in the kernel (cgroup_threadgroup_rwsem)
 * when no move happened just before: 31 ms of a 63 ms container start at concurrency 1 on the test
 * node, where the bare `runc run -d` loop pays nothing of the kind. The launcher is moved once, when
 * it starts; its children inherit the cgroup. It also takes the fork off Node's main thread (a
 * spawn from a process of acetate run's size blocked it for a few ms per container).
 *
 * Lifetime: started at the first launch, ended when stdin closes (acetate exiting) or by stop(),
 * which the runtime calls before it removes the emptied conmons' cgroup (the launcher in it would
 * keep it). A launcher that died is started again at the next launch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../util/package-root.js';

/** dist/native/acetate-launch, built from native/acetate-launch.c by scripts/build-native.sh. */
export const LAUNCH_HELPER = path.join(PACKAGE_ROOT, 'dist', 'native', 'acetate-launch');

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

export class ConmonLauncher {
  private child?: ChildProcess;
  private starting?: Promise<ChildProcess>;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private lineBuf = '';

  /** `place` moves the new launcher where its children must be born (before any request is sent). */
  constructor(private readonly opts: { place: (pid: number) => Promise<void>; helper?: string }) {}

  /** The launcher's pid while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts `req.program` from the launcher; resolves when that first process ends. */
  async launch(req: LaunchRequest): Promise<LaunchEnd> {
    const fields = [req.out, req.fd3, String(req.args.length + 1), req.program, ...req.args];
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    fields.push(String(env.length), ...env);
    if (fields.some((f) => f.includes('\0'))) throw new LauncherError('a launch argument contains a NUL byte');
    const child = await this.running();
    const id = this.nextId++;
    const ended = new Promise<LaunchEnd>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.refWhileWaiting();
    child.stdin!.write(`${[id, ...fields].join('\0')}\0`);
    return ended;
  }

  /** Ends the launcher (what it started runs on) and waits for it to be gone. */
  async stop(): Promise<void> {
    const child = this.child ?? (await this.starting?.catch(() => undefined));
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }

  private running(): Promise<ChildProcess> {
    if (this.child) return Promise.resolve(this.child);
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<ChildProcess> {
    const helper = this.opts.helper ?? LAUNCH_HELPER;
    const child = spawn(helper, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new LauncherError(`cannot start ${helper}: ${err.message}`, { cause: err })));
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => this.onOutput(text));
    child.stdin!.on('error', () => undefined); // its exit tells
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
    await spawned;
    try {
      await this.opts.place(child.pid!);
    } catch (err) {
      child.kill('SIGKILL');
      throw new LauncherError(`cannot place the conmon launcher: ${(err as Error).message}`, { cause: err });
    }
    // Nothing keeps acetate alive for the launcher's sake; a launch in flight refs it (refWhileWaiting).
    child.unref();
    this.child = child;
    this.refWhileWaiting();
    return child;
  }

  private onOutput(text: string): void {
    this.lineBuf += text;
    let nl: number;
    while ((nl = this.lineBuf.indexOf('\n')) >= 0) {
      const [id, what, detail] = this.lineBuf.slice(0, nl).split(' ', 3);
      this.lineBuf = this.lineBuf.slice(nl + 1);
      const w = this.waiting.get(Number(id));
      if (!w) continue;
      this.waiting.delete(Number(id));
      if (what === 'exit') w.resolve({ code: Number(detail) });
      else if (what === 'signal') w.resolve({ signal: Number(detail) });
      else w.reject(new LauncherError(`the conmon launcher could not start a process: ${detail ?? what}`));
    }
    this.refWhileWaiting();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = undefined;
    this.lineBuf = '';
    const err = new LauncherError(`the conmon launcher exited (${code ?? signal})`);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  /** The pipe from the launcher keeps Node's loop alive only while a launch waits for its answer. */
  private refWhileWaiting(): void {
    const out = this.child?.stdout as (NodeJS.ReadableStream & { ref?: () => void; unref?: () => void }) | undefined;
    const stdin = this.child?.stdin as (NodeJS.WritableStream & { unref?: () => void }) | undefined;
    stdin?.unref?.();
    if (this.waiting.size > 0) out?.ref?.();
    else out?.unref?.();
  }
}
