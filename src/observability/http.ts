/**
 * The loop's HTTP endpoint: /metrics (Prometheus), /healthz (200 while the loop runs), /readyz
 * (200 after the first full sync of every source). Bound to 127.0.0.1 by default: metrics name
 * containers and files, and nothing here needs to be reachable from elsewhere.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';
import { closeServer, listenOn } from '../util/http-server.js';

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses --metrics-addr: "HOST:PORT", ":PORT" (127.0.0.1), "PORT", "[::1]:PORT". "0", "" or "off"
 * disable the endpoint (undefined); "HOST:0" binds an ephemeral port (tests).
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const s = text.trim();
  if (s === '' || s === '0' || s === 'off' || s === 'false' || s === 'none') return undefined;
  let host = '127.0.0.1';
  let portText = s;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (s.includes(':')) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i) || '127.0.0.1';
    portText = s.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 0 || port > 65535) throw new Error(`'${text}' is not an address such as 127.0.0.1:9464`);
  return { host, port };
}

export interface HealthProbe {
  /** The loop runs (workers alive, not shutting down). */
  healthy(): boolean;
  /** The first full sync of every source is done. */
  ready(): boolean;
  /** POST /sync: fetch the sources that poll (Git) now; resolves with what was applied, rejects when the sync failed. Absent: 404. */
  sync?: () => Promise<string>;
}

export interface MetricsServer {
  /** The bound address, e.g. http://127.0.0.1:41234 */
  url: string;
  address: ListenAddress;
  close(): Promise<void>;
}

export async function startMetricsServer(addr: ListenAddress, metrics: Metrics, probe: HealthProbe): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url === '/sync') {
      // Webhook-free "fetch now" (a CI step, a git hook): POST only, on the loopback address by default.
      if (!probe.sync) return reply(404, 'no source to sync (run --git)\n');
      if (req.method !== 'POST') return reply(405, 'POST /sync\n');
      probe.sync().then(
        (applied) => reply(200, `${applied}\n`),
        (err: unknown) => reply(502, `${(err as Error).message}\n`),
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    switch (url) {
      case '/metrics':
        metrics.text().then(
          (text) => reply(200, text, metrics.contentType),
          (err: unknown) => reply(500, `${(err as Error).message}\n`),
        );
        return;
      case '/healthz':
        return probe.healthy() ? reply(200, 'ok\n') : reply(503, 'not running\n');
      case '/readyz':
        return probe.ready() ? reply(200, 'ok\n') : reply(503, 'not ready: first sync not finished\n');
      case '/':
        return reply(200, `acetate: /metrics /healthz /readyz${probe.sync ? ' POST /sync' : ''}\n`);
      default:
        return reply(404, 'not found\n');
    }
  });
  server.keepAliveTimeout = 5000;
  await listenOn(server, { port: addr.port, host: addr.host });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}`,
    address: { host: bound.address, port: bound.port },
    close: () => closeServer(server),
  };
}
