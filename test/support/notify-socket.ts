/**
 * A service manager's end of sd_notify(3) for tests: an AF_UNIX datagram socket that records
 * every message with the sender's pid (SCM_CREDENTIALS, as systemd checks NotifyAccess=main).
 * Node cannot bind unix datagram sockets, so a few lines of python3 (on every Debian machine;
 * scripts/setup.sh checks) hold the socket and print one JSON line per message. The helper exits
 * when its stdin closes: it never outlives the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait.js';

const RECEIVER = String.raw`
import json, os, select, socket, struct, sys, time
address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + address[1:] if address.startswith("@") else address)
print(json.dumps({"bound": True}), flush=True)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in r and not os.read(sys.stdin.fileno(), 1):
        break
    if s in r:
        # Room for the credentials only: a file descriptor sent along (systemd-notify's barrier)
        # is closed by the kernel, which is what ends the sender's wait.
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        print(json.dumps({"pid": pid, "text": data.decode("utf-8", "replace"), "at": time.monotonic() * 1000}), flush=True)
`;

export interface NotifyMessage {
  /** Sender pid from the socket credentials. */
  pid: number | null;
  /** VAR=value pairs of the datagram. */
  fields: Map<string, string>;
  /** CLOCK_MONOTONIC ms when received. */
  at: number;
  /** Index in arrival order. */
  index: number;
}

export class NotifySocket {
  readonly messages: NotifyMessage[] = [];
  private constructor(
    /** What goes in $NOTIFY_SOCKET: a path, or '@name' for an abstract socket. */
    readonly address: string,
    private readonly child: ChildProcess,
    private readonly dir: string | undefined,
  ) {}

  /** A socket at a path in a fresh temp dir, or (abstract: true) an abstract one named '@acetate-test-…'. */
  static async open(opts: { abstract?: boolean } = {}): Promise<NotifySocket> {
    const dir = opts.abstract ? undefined : await mkdtemp(path.join(os.tmpdir(), 'acetate-notify-'));
    const address = dir ? path.join(dir, 'notify.sock') : `@acetate-test-${process.pid}-${randomBytes(6).toString('hex')}`;
    const child = spawn('python3', ['-c', RECEIVER, address], { stdio: ['pipe', 'pipe', 'pipe'] });
    const sock = new NotifySocket(address, child, dir);
    let bound = false;
    let err = '';
    let buf = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const v = JSON.parse(buf.slice(0, i)) as { bound?: boolean; pid: number | null; text: string; at: number };
        buf = buf.slice(i + 1);
        if (v.bound) bound = true;
        else {
          const fields = new Map(v.text.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
          sock.messages.push({ pid: v.pid, fields, at: v.at, index: sock.messages.length });
        }
      }
    });
    await waitFor(() => bound || child.exitCode !== null, { timeoutMs: 10_000, message: 'the notify socket bound' });
    if (!bound) throw new Error(`python3 could not bind ${address}: ${err}`);
    return sock;
  }

  /** Messages that carry `name` (e.g. 'READY'), barrier messages aside. */
  with(name: string): NotifyMessage[] {
    return this.messages.filter((m) => m.fields.has(name));
  }

  /** Waits for the first message carrying `name`. */
  async next(name: string, timeoutMs = 30_000): Promise<NotifyMessage> {
    return waitFor(() => this.with(name)[0], {
      timeoutMs,
      message: () => `${name}= on the notify socket (got: ${this.messages.map((m) => [...m.fields.keys()].join('+')).join(', ')})`,
    });
  }

  async close(): Promise<void> {
    const exited = new Promise((r) => (this.child.exitCode !== null ? r(undefined) : this.child.once('exit', r)));
    this.child.stdin!.end();
    await exited;
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
