/**
 * Host ports held open while they are published, as Podman (conmon) and Docker (docker-proxy) do:
 * a socket bound to hostIP:hostPort (TCP listening, UDP bound) for every published port, so a
 * process of the node that binds the same port later gets EADDRINUSE instead of being silently
 * shadowed by the DNAT rule, and acetate's own metrics endpoint can never land on a published port.
 *
 * Who holds the socket: a holder process per port, `sleep infinity` started detached (its own
 * session, like conmon) with the bound socket as its fd 3; its argv[0] names the claim file, so
 * `ps` says what it is. Killing it closes the socket: that is the release.
 *
 * Why not conmon, as Podman does (the bound sockets passed to conmon at its start): whether or not
 * conmon 2.1.6 keeps them (not relied on, not checked here), it can only hold what it was given
 * when it started, and acetate changes published ports in place (same process, no new conmon): a
 * port added later could not be given to it, one removed could not be closed without stopping
 * the container. Why not acetate's own process: `acetate apply` is one-shot and exits, the ports
 * must stay held. A process per port costs a few ms to start and little memory (bench: holding
 * ports row); it needs no code of its own (nothing to keep, update or crash), and a holder that is
 * gone is seen (pid and start time kept in the claim) and started again.
 *
 * Node has no public way to pass a socket to a child's fd 3 except by its fd number; the handle's
 * fd is read from the internals (`_handle.fd`, stable since Node 0.x; for dgram, its state symbol).
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { ANY_IPV4 } from '../../api/ports.js';
import type { PublishedPort } from '../../api/types.js';
import { liveStartTimeNow } from '../../util/processes.js';

/** A holder process, as kept in the claim file: a pid alone may be reused. */
export interface PortHolder {
  pid: number;
  startTime: number;
}

/** How long a killed holder may take to close its socket before release gives up waiting. */
const EXIT_WAIT_MS = 5_000;

interface BoundSocket {
  fd: number;
  close(): void;
}

function fdOfServer(s: net.Server): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the listening socket has no fd');
  return fd;
}

function fdOfDgram(s: dgram.Socket): number {
  // dgram keeps its handle under a symbol (`_handle` is a deprecated getter that warns).
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  const state = sym ? (s as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym] : undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the UDP socket has no fd');
  return fd;
}

/** Binds hostIP:hostPort (exclusively, no SO_REUSEPORT); rejects with the errno (EADDRINUSE...). */
export function bindHostPort(p: PublishedPort): Promise<BoundSocket> {
  const host = p.hostIP ?? ANY_IPV4;
  return new Promise((resolve, reject) => {
    if (p.protocol === 'UDP') {
      const s = dgram.createSocket('udp4');
      s.once('error', (err) => {
        s.close();
        reject(err);
      });
      s.bind({ address: host, port: p.hostPort, exclusive: true }, () => resolve({ fd: fdOfDgram(s), close: () => s.close() }));
      return;
    }
    const srv = net.createServer();
    srv.once('error', reject);
    // A backlog of 1: nothing accepts; DNAT sends the traffic to the container before this socket.
    srv.listen({ host, port: p.hostPort, exclusive: true, backlog: 1 }, () => resolve({ fd: fdOfServer(srv), close: () => srv.close() }));
  });
}

/**
 * Binds the port and hands the socket to a new holder process; `label` becomes its argv[0].
 * Rejects with EADDRINUSE when a process of the node has the port.
 */
export async function holdHostPort(p: PublishedPort, label: string, place?: (pid: number) => Promise<void>): Promise<PortHolder> {
  const sock = await bindHostPort(p);
  try {
    // uv_spawn returns once the child has exec'd: the child has its copy of the socket by then.
    const child = spawn('sleep', ['infinity'], { argv0: label, detached: true, stdio: ['ignore', 'ignore', 'ignore', sock.fd] });
    const pid = await new Promise<number>((resolve, reject) => {
      if (child.pid) resolve(child.pid);
      else child.once('error', reject);
    });
    child.unref();
    const startTime = liveStartTimeNow(pid);
    if (startTime === undefined) throw new Error(`the holder of ${label} exited at once`);
    const holder = { pid, startTime };
    try {
      await place?.(pid);
    } catch (err) {
      await releaseHolder(holder).catch(() => undefined); // a holder left in acetate's cgroup would go with acetate's unit
      throw err;
    }
    return holder;
  } finally {
    sock.close();
  }
}

/** Whether the holder still runs (the same process: pid and start time). */
export function holderAlive(h: PortHolder): boolean {
  return liveStartTimeNow(h.pid) === h.startTime;
}

/** Kills the holder and waits until its socket is closed (the process exited). Idempotent. */
export async function releaseHolder(h: PortHolder): Promise<void> {
  if (!holderAlive(h)) return;
  try {
    process.kill(h.pid, 'SIGKILL');
  } catch {
    return; // gone
  }
  // Its fds close in exit(), before it is a zombie: liveStartTimeNow is undefined from then on.
  const until = Date.now() + EXIT_WAIT_MS;
  for (let delay = 1; liveStartTimeNow(h.pid) === h.startTime; delay = Math.min(delay * 2, 50)) {
    if (Date.now() > until) throw new Error(`the holder (pid ${h.pid}) of a host port did not exit`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** `pid startTime` as kept on the claim file's second line. */
export function formatHolder(h: PortHolder): string {
  return `${h.pid} ${h.startTime}`;
}

export function parseHolder(line: string | undefined): PortHolder | undefined {
  const m = /^(\d+) (\d+)$/.exec(line?.trim() ?? '');
  return m ? { pid: Number(m[1]), startTime: Number(m[2]) } : undefined;
}
