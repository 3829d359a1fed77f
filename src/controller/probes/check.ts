/**
 * One run of one probe, with Kubernetes' meaning of success:
 * - exec: `runc exec` of the command in the container (its namespaces, cgroup and environment);
 *   exit code 0. A command still running at timeoutSeconds is SIGKILLed and the probe fails. The
 *   check ends when the command exits (a child it left in the background is not waited for), and
 *   only a bounded part of its output is read (runtime/runc/exec.ts).
 * - httpGet: a GET answered with a status in [200, 400); tcpSocket: the connection is accepted.
 *
 * Where httpGet/tcpSocket connect from: a container on the node's network (`network: host`) is
 * reached directly from acetate, at `host` or 127.0.0.1. Any other container has a network
 * namespace of its own (`none`: loopback only, which acetate cannot reach), so the check runs
 * inside it: `nsenter --net=/proc/PID/ns/net` (only the network namespace: the file system stays
 * the node's) runs the node's static busybox, `wget` or `nc`, which exits 0 on success. A fork of
 * two small static binaries per check rather than a Node child process (~40 ms of CPU each), and
 * nothing is needed in the container's template.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { exec, ExecError } from '../../util/exec.js';
import type { NetworkMode, NormalizedProbe } from '../../api/types.js';
import type { Runtime } from '../../runtime/runtime.js';
import { messageOf } from '../../contracts/errors.js';

export interface ProbeTarget {
  key: string;
  /** Host pid of the container's PID 1 (whose network namespace the check enters). */
  pid: number;
  network: NetworkMode | string;
}

export interface ProbeOutcome {
  ok: boolean;
  /** What the check said: the command's output, the HTTP status, the connection error. */
  output: string;
}

export interface CheckTools {
  nsenter: string;
  busybox: string;
}

const MAX_OUTPUT = 1024;

function trimOutput(s: string): string {
  const t = s.trim();
  return t.length > MAX_OUTPUT ? `${t.slice(0, MAX_OUTPUT)}…` : t;
}

export interface CheckDeps {
  runtime: Runtime;
  tools: () => Promise<CheckTools>;
  /** Aborts the check (the prober stops, the container is gone): its process is killed. */
  signal?: AbortSignal;
}

export async function runCheck(p: NormalizedProbe, target: ProbeTarget, deps: CheckDeps): Promise<ProbeOutcome> {
  const timeoutMs = p.timeoutSeconds * 1000;
  const h = p.handler;
  const signal = deps.signal;
  try {
    if (h.kind === 'exec') {
      const r = await deps.runtime.exec(target.key, { command: h.command, stdio: 'capture', timeoutMs, ...(signal ? { signal } : {}) });
      if (r.timedOut) return { ok: false, output: `command timed out after ${p.timeoutSeconds}s` };
      const cut = r.outputCut ? ` (output beyond ${r.outputCut} bytes not read)` : '';
      return { ok: r.exitCode === 0, output: `${trimOutput(r.output ?? '') || `exit code ${r.exitCode}`}${cut}` };
    }
    const hostNet = target.network === 'host';
    const host = h.host ?? '127.0.0.1';
    if (h.kind === 'tcpSocket') {
      if (hostNet) return await tcpDirect(host, h.port, timeoutMs, signal);
      const { nsenter, busybox } = await deps.tools();
      return await inNetns(
        nsenter,
        target.pid,
        [busybox, 'nc', '-w', String(p.timeoutSeconds), host, String(h.port), '-e', busybox, 'true'],
        { timeoutMs, signal },
        `tcp ${host}:${h.port} accepted`,
      );
    }
    const url = `${h.scheme.toLowerCase()}://${host.includes(':') ? `[${host}]` : host}:${h.port}${h.path}`;
    if (hostNet) return await httpDirect(url, h.headers, timeoutMs, signal);
    const { nsenter, busybox } = await deps.tools();
    const args = [busybox, 'wget', '-q', '-O', '/dev/null', '--no-check-certificate', ...h.headers.flatMap((x) => ['--header', `${x.name}: ${x.value}`]), url];
    return await inNetns(nsenter, target.pid, args, { timeoutMs, signal }, `GET ${url}: success`);
  } catch (err) {
    return { ok: false, output: trimOutput(messageOf(err)) };
  }
}

async function inNetns(nsenter: string, pid: number, argv: string[], o: { timeoutMs: number; signal?: AbortSignal }, okText: string): Promise<ProbeOutcome> {
  const { timeoutMs, signal } = o;
  try {
    await exec(nsenter, [`--net=/proc/${pid}/ns/net`, '--', ...argv], { timeoutMs, maxBuffer: MAX_OUTPUT, ...(signal ? { signal } : {}) });
    return { ok: true, output: okText };
  } catch (err) {
    if (err instanceof ExecError) {
      if (err.signal === 'SIGKILL') return { ok: false, output: `timed out after ${timeoutMs / 1000}s` };
      return { ok: false, output: trimOutput(err.stderr || err.stdout || `exit code ${err.exitCode}`) };
    }
    throw err;
  }
}

function tcpDirect(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, ...(signal ? { signal } : {}) });
    const done = (r: ProbeOutcome) => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(timeoutMs, () => done({ ok: false, output: `tcp ${host}:${port}: timed out after ${timeoutMs / 1000}s` }));
    sock.once('connect', () => done({ ok: true, output: `tcp ${host}:${port} accepted` }));
    sock.once('error', (err) => done({ ok: false, output: `tcp ${host}:${port}: ${err.message}` }));
  });
}

function httpDirect(url: string, headers: { name: string; value: string }[], timeoutMs: number, signal?: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const mod = url.startsWith('https:') ? https : http;
    const opts = {
      headers: Object.fromEntries(headers.map((x) => [x.name, x.value])),
      timeout: timeoutMs,
      rejectUnauthorized: false,
      ...(signal ? { signal } : {}),
    };
    const req = mod.get(url, opts, (res) => {
      res.destroy(); // only the status counts: the body, whatever its size, is not read
      const code = res.statusCode ?? 0;
      resolve({ ok: code >= 200 && code < 400, output: `GET ${url}: HTTP ${code}` });
    });
    req.once('timeout', () => {
      req.destroy();
      resolve({ ok: false, output: `GET ${url}: timed out after ${timeoutMs / 1000}s` });
    });
    req.once('error', (err) => resolve({ ok: false, output: `GET ${url}: ${err.message}` }));
  });
}
