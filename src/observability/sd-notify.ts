/**
 * The systemd notification protocol (sd_notify(3)) for `acetate run` under a `Type=notify` unit:
 * READY=1 after the first sync, STATUS= lines, WATCHDOG=1 while the loop is healthy (the same
 * answer as /healthz), STOPPING=1 at shutdown.
 *
 * A notification is a datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
 * abstract name when it starts with '@'). Node cannot send unix datagrams (dgram is UDP only,
 * net is streams only), and the npm libraries that can (sd-notify, unix-dgram) build native code
 * at install. So each message is sent by systemd's own `systemd-notify` tool (package systemd,
 * present wherever systemd runs): a few ms per message, a handful of messages a minute.
 * systemd-notify sends with its parent's pid in the socket credentials (systemd >= 246; this is
 * acetate), so the unit's default NotifyAccess=main accepts it; `--no-block` skips its barrier
 * (a wait of up to 5 s for the manager to have read the message), which acetate does not need:
 * messages are sent one at a time, in order.
 */
import { messageOf } from '../contracts/errors.js';
import { exec } from '../util/exec.js';

/** What the service manager asked for, read from (and then removed from) the environment. */
export interface NotifySettings {
  socket: string;
  /** Ping at least this often (µs); undefined: no watchdog for this process. */
  watchdogUsec?: number;
}

/** The variables sd_notify(3) reads. */
const NOTIFY_ENV = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/**
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and removes them from `env`, as
 * sd_notify(unset_environment=1) and sd_watchdog_enabled(3) do: no child (runc, skopeo, a probe)
 * may inherit them. `runc start` in particular would otherwise proxy the socket into the
 * container and wait for the container's own READY=1. The watchdog is ours only when
 * WATCHDOG_PID is unset or names this process.
 */
export function takeNotifySettings(env: NodeJS.ProcessEnv = process.env, pid = process.pid): NotifySettings | undefined {
  const [socket, usecText, pidText] = NOTIFY_ENV.map((k) => env[k]);
  for (const k of NOTIFY_ENV) delete env[k];
  if (!socket || !(socket.startsWith('/') || socket.startsWith('@'))) return undefined;
  const usec = Number(usecText);
  const forUs = pidText === undefined || pidText === '' || Number(pidText) === pid;
  return { socket, ...(forUs && Number.isSafeInteger(usec) && usec > 0 ? { watchdogUsec: usec } : {}) };
}

export interface NotifierOptions {
  settings: NotifySettings;
  /** The /healthz answer: while false, the watchdog is not pinged and systemd restarts the unit. */
  healthy: () => boolean;
  onError: (message: string) => void;
  /** The sender; default `systemd-notify` from $PATH. */
  command?: string;
}

/** STATUS= text is one line: a newline would start another variable. */
function oneLine(text: string): string {
  return [...text.slice(0, 200)].map((c) => (c < ' ' || c === '\x7f' ? ' ' : c)).join('');
}

export class SystemdNotifier {
  private queue: Promise<void> = Promise.resolve();
  private watchdog?: NodeJS.Timeout;
  private lastStatus?: string;
  private failed = false;
  private unhealthyTold = false;
  private pingQueued = false;

  constructor(private readonly opts: NotifierOptions) {}

  /** Ping interval: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends. */
  get watchdogMs(): number | undefined {
    const usec = this.opts.settings.watchdogUsec;
    return usec === undefined ? undefined : Math.max(1, Math.floor(usec / 2000));
  }

  /** Sends `fields` (VAR=value lines) after every message sent before; never throws. */
  send(fields: string[]): Promise<void> {
    this.queue = this.queue.then(() => this.sendNow(fields));
    return this.queue;
  }

  status(text: string): Promise<void> {
    const line = oneLine(text);
    if (line === this.lastStatus) return this.queue;
    this.lastStatus = line;
    return this.send([`STATUS=${line}`]);
  }

  ready(status: string): Promise<void> {
    this.lastStatus = oneLine(status);
    return this.send(['READY=1', `STATUS=${this.lastStatus}`]);
  }

  /** Starts the watchdog pings (when the manager asked for them); the first one at once. */
  startWatchdog(): void {
    const ms = this.watchdogMs;
    if (ms === undefined || this.watchdog) return;
    this.ping();
    // Real time, on purpose: the watchdog is about this process's own timers firing at all. Not
    // keeping the process alive: a run that ends early (lock busy, bad flag) just exits.
    this.watchdog = setInterval(() => this.ping(), ms);
    this.watchdog.unref();
  }

  /** STOPPING=1 (and the watchdog ends: a shutdown that hangs is ended by TimeoutStopSec). */
  async stopping(status: string): Promise<void> {
    clearInterval(this.watchdog);
    this.lastStatus = oneLine(status);
    await this.send(['STOPPING=1', `STATUS=${this.lastStatus}`]);
  }

  /** Waits for every message queued so far. */
  flush(): Promise<void> {
    return this.queue;
  }

  private ping(): void {
    if (this.opts.healthy()) {
      this.unhealthyTold = false;
      // One ping waiting is enough: a slow sender must not pile them up.
      if (this.pingQueued) return;
      this.pingQueued = true;
      this.queue = this.queue.then(() => {
        this.pingQueued = false;
        return this.sendNow(['WATCHDOG=1']);
      });
      return;
    }
    if (!this.unhealthyTold) this.opts.onError('the loop is not healthy (/healthz says 503): the systemd watchdog is no longer pinged');
    this.unhealthyTold = true;
  }

  private async sendNow(fields: string[]): Promise<void> {
    try {
      await exec(this.opts.command ?? 'systemd-notify', ['--no-block', ...fields], {
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NOTIFY_SOCKET: this.opts.settings.socket },
        timeoutMs: 5000,
        maxBuffer: 4096,
      });
      this.failed = false;
    } catch (err) {
      // Told once per run of failures: a missing systemd-notify must not flood the log every ping.
      if (!this.failed) this.opts.onError(`cannot notify systemd (${fields.map((f) => f.split('=')[0]).join(', ')}): ${messageOf(err)}`);
      this.failed = true;
    }
  }
}
