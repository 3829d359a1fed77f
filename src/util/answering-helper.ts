/**
 * A long-lived native helper that acetate sends requests to, instead of spawning a process per
 * request: the conmon launcher (native/acetate-launch.c) and the idmap server (native/acetate-idmap.c
 * --serve). Why: a spawn() forks acetate's whole Node process, 2-10 ms of its one thread each on the
 * test node (more as its memory grows); a fork from a small C process costs a fraction of that.
 *
 * Protocol (native/requests.h): a request is NUL-terminated fields, the first the request's id; the
 * helper answers each request with one line `ID WORD DETAIL`. Answers come in any order.
 *
 * Lifetime: started at the first request, ended by stop() or when acetate exits (the end of its
 * stdin). It never keeps acetate alive: its pipes are unref'd, and a request waiting for its answer
 * keeps Node's loop alive by its time limit's timer. A helper that ended or died is started again
 * at the next request; a helper silent past a request's time limit is killed, which fails every
 * request waiting on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** The helpers' limits per request (native/requests.h: MAX_FIELDS; each helper's buffer: 1 MiB). */
const MAX_REQUEST_BYTES = 1 << 20;
const MAX_FIELDS = 4096;
/** How long a helper killed for its silence is given to end before its requests fail regardless. */
const HELPER_END_WAIT_MS = 5_000;

export interface HelperAnswer {
  word: string;
  detail: string;
}

export interface AnsweringHelperOptions {
  /** The helper's absolute path, and its arguments. */
  program: string;
  args?: readonly string[];
  /** What messages call it: "the conmon launcher". */
  name: string;
  /** Errors are made by this (the caller's own type, so that its callers can tell them apart). */
  error: (message: string, options?: { cause?: unknown }) => Error;
  /** Moves a new helper where it must run before any request is sent (the launcher's cgroup). */
  place?: (pid: number) => Promise<void>;
}

interface Waiting {
  resolve: (answer: HelperAnswer) => void;
  reject: (err: Error) => void;
}

/** One helper process and the requests waiting on it: a helper that ends fails only its own. */
class HelperProcess {
  readonly waiting = new Map<number, Waiting>();
  /** Why it was killed (a request's time limit): what its waiting requests fail with. */
  killedBecause?: string;
  private lineBuf = '';

  constructor(
    readonly child: ChildProcess,
    opts: AnsweringHelperOptions,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => this.onOutput(text));
    child.stdin!.on('error', () => undefined); // its end tells ('close' below)
    // 'close', not 'exit': every line it wrote has been read by then.
    child.once('close', (code, signal) => {
      const err = opts.error(this.killedBecause ?? `${opts.name} exited (${code ?? signal})`);
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
      const a = line.indexOf(' ');
      const b = line.indexOf(' ', a + 1);
      const id = a < 0 ? NaN : Number(line.slice(0, a));
      const w = this.waiting.get(id);
      if (!w) continue;
      this.waiting.delete(id);
      w.resolve(b < 0 ? { word: line.slice(a + 1), detail: '' } : { word: line.slice(a + 1, b), detail: line.slice(b + 1) });
    }
  }
}

export class AnsweringHelper {
  private current?: HelperProcess;
  private starting?: Promise<HelperProcess>;
  private nextId = 1;

  constructor(private readonly opts: AnsweringHelperOptions) {}

  /** The helper's pid while one runs. */
  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  /**
   * Sends one request (its fields after the id) and resolves with the answer. A helper that gives
   * no answer within `timeoutMs` (stopped, or stuck) is killed: this request and every other one
   * waiting on it fail once it is gone (not before: what it was doing has then ended, and a caller
   * cleaning up after it does not race it), and the next request starts a new helper. What a killed
   * helper had made is its callers' to undo (the idmap server's mounts: idmap.ts).
   */
  async request(fields: readonly string[], timeoutMs: number): Promise<HelperAnswer> {
    const { name, error } = this.opts;
    if (fields.some((f) => f.includes('\0'))) throw error(`a request to ${name} contains a NUL byte`);
    const bytes = fields.reduce((n, f) => n + Buffer.byteLength(f) + 1, 24);
    if (fields.length + 1 > MAX_FIELDS || bytes > MAX_REQUEST_BYTES)
      throw error(`a request over the limits of ${name} (${MAX_FIELDS} fields, ${MAX_REQUEST_BYTES} bytes)`);
    let p = await this.running();
    // stop() forgot this one while it was starting: a new one, not one whose stdin is ending.
    for (let tries = 0; p !== this.current && tries < 3; tries++) p = await this.running();
    const id = this.nextId++;
    let timer: NodeJS.Timeout | undefined;
    let lastResort: NodeJS.Timeout | undefined;
    try {
      return await new Promise<HelperAnswer>((resolve, reject) => {
        p.send(id, fields, { resolve, reject });
        timer = setTimeout(() => {
          p.killedBecause = `${name} (pid ${p.child.pid}) gave no answer within ${timeoutMs} ms: killed`;
          if (this.current === p) this.current = undefined;
          p.child.kill('SIGKILL'); // its 'close' fails this request and the others waiting on it
          // This timer kept Node's loop alive (the helper's pipes are unref'd): the next one does
          // until the 'close', and fails the request anyway if the helper never ends (a process in
          // D state, a descendant holding its stdout).
          lastResort = setTimeout(() => reject(error(`${p.killedBecause}, and it has not ended`)), HELPER_END_WAIT_MS);
        }, timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      clearTimeout(lastResort);
    }
  }

  /**
   * Ends the helper once it has answered what it was asked. A request that begins meanwhile starts
   * a new helper: this one is forgotten first.
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

  private running(): Promise<HelperProcess> {
    if (this.current && !this.current.ended) return Promise.resolve(this.current);
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<HelperProcess> {
    const { program, args = [], name, error, place } = this.opts;
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const p = new HelperProcess(child, this.opts);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(error(`cannot start ${program}: ${err.message}`, { cause: err })));
    });
    if (place) {
      try {
        await place(child.pid!);
        // Placed, but gone meanwhile (a zombie's pid can be written too): not one to send requests to.
        if (p.ended) throw new Error(`it exited (${child.exitCode ?? child.signalCode})`);
      } catch (err) {
        child.kill('SIGKILL');
        throw error(`cannot place ${name}: ${(err as Error).message}`, { cause: err });
      }
    }
    child.unref();
    (child.stdout as unknown as { unref(): void }).unref();
    (child.stdin as unknown as { unref(): void }).unref();
    this.current = p;
    return p;
  }
}
