/**
 * A tiny HTTP proxy on 127.0.0.1 in front of a test registry that misbehaves on demand: answers
 * 500, or flips bytes of blob downloads (a corrupted blob), or passes everything through; and, in
 * any mode, answers a manifest request for a digest with another manifest's bytes (`swaps`: what a
 * compromised registry or mirror would do to a pinned reference), claiming the digest asked for.
 */
import http from 'node:http';
import type net from 'node:net';

export type ProxyMode = 'pass' | 'error500' | 'corrupt-blobs' | 'error500-blobs';

export interface FaultyProxy {
  host: string;
  mode: ProxyMode;
  /** Requests seen (method path). */
  seen: string[];
  /** Manifest requests for the key digest are answered with this body and media type. */
  swaps: Map<string, { body: Buffer; mediaType: string }>;
  /**
   * Manifest requests whose path matches `delay.paths` are held `delay.ms` before they are passed
   * on (a registry slow to answer); close() or release() ends every hold, so a test never waits
   * its full length.
   */
  delay: { paths?: RegExp; ms: number };
  /** Blob downloads are sent at this many bytes a second (0: at full speed). */
  blobBytesPerSec: number;
  /** Manifest requests being held now. */
  held(): number;
  /** Passes every held request on at once (and holds no more). */
  release(): void;
  close(): Promise<void>;
}

export async function startFaultyProxy(upstreamPort: number, mode: ProxyMode = 'pass'): Promise<FaultyProxy> {
  const seen: string[] = [];
  const state = { mode };
  const swaps = new Map<string, { body: Buffer; mediaType: string }>();
  const delay: { paths?: RegExp; ms: number } = { ms: 0 };
  const pace = { blobBytesPerSec: 0 };
  const holds = new Map<NodeJS.Timeout, () => void>();
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (delay.ms > 0 && delay.paths?.test(req.url ?? '') && /\/manifests\//.test(req.url ?? '')) {
      const go = (): void => {
        holds.delete(t);
        forward(req, res);
      };
      const t = setTimeout(go, delay.ms);
      holds.set(t, go);
      return;
    }
    forward(req, res);
  });
  const forward = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const asked = /\/manifests\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1];
    const swap = asked ? swaps.get(asked) : undefined;
    if (swap) {
      res.writeHead(200, { 'content-type': swap.mediaType, 'content-length': swap.body.length, 'docker-content-digest': asked });
      res.end(req.method === 'HEAD' ? undefined : swap.body);
      return;
    }
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? '');
    if (state.mode === 'error500' || (state.mode === 'error500-blobs' && isBlob)) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}');
      return;
    }
    const up = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${upstreamPort}` } },
      (ur) => {
        const headers = { ...ur.headers };
        // Blob redirects must come back through us.
        if (headers.location)
          headers.location = headers.location.replace(`127.0.0.1:${upstreamPort}`, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
        res.writeHead(ur.statusCode ?? 502, headers);
        if (pace.blobBytesPerSec > 0 && isBlob && req.method === 'GET') {
          // Paced: each chunk waits as long as it takes at the rate; a closed proxy stops the timers.
          ur.on('data', (chunk: Buffer) => {
            ur.pause();
            res.write(chunk);
            const t = setTimeout(
              () => {
                timers.delete(t);
                ur.resume();
              },
              (1000 * chunk.length) / pace.blobBytesPerSec,
            );
            timers.add(t);
          });
          ur.on('end', () => res.end());
        } else if (state.mode === 'corrupt-blobs' && isBlob && req.method === 'GET') {
          let first = true;
          ur.on('data', (chunk: Buffer) => {
            if (first && chunk.length > 0) {
              chunk = Buffer.from(chunk);
              chunk[Math.floor(chunk.length / 2)]! ^= 0xff;
              first = false;
            }
            res.write(chunk);
          });
          ur.on('end', () => res.end());
        } else {
          ur.pipe(res);
        }
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: ProxyMode) {
      state.mode = m;
    },
    seen,
    swaps,
    delay,
    get blobBytesPerSec() {
      return pace.blobBytesPerSec;
    },
    set blobBytesPerSec(n: number) {
      pace.blobBytesPerSec = n;
    },
    held: () => holds.size,
    release() {
      delay.ms = 0;
      for (const [t, go] of holds) {
        clearTimeout(t);
        go();
      }
    },
    async close() {
      delay.ms = 0;
      for (const t of [...holds.keys(), ...timers]) clearTimeout(t);
      holds.clear();
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
