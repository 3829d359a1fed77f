/**
 * Traffic to 127.0.0.1 for the benchmarks and the tests: a bounded HTTP GET, and free TCP ports
 * (for hostPorts and test registries).
 */
import http from 'node:http';
import net from 'node:net';

/** GET http://host:port/ with a 2 s timeout: the body, or undefined when nothing answers. */
export function httpGet(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', timeout: 2000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Ports handed out in this process: a published port is a DNAT rule, not a bound socket, so the kernel would hand it out again. */
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1 (the kernel's choice), never one handed out before, for a hostPort. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await kernelPort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
