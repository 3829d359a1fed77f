/**
 * Which container publishes which host port: one file per claim in `<stateDir>/network/ports`,
 * `<protocol>_<hostIP>_<hostPort>` holding the container id, created with O_EXCL so that two
 * claims of the same socket cannot both succeed, even from two acetate processes. 0.0.0.0
 * overlaps every address, so it is checked against every claim of the same port.
 */
import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { ANY_IPV4, formatPort, publishedOnly, sameClaim } from '../../api/ports.js';
import type { PublishedPort } from '../../api/types.js';
import { makeDirs, readSmallFileNow, removePaths } from '../../util/small-file.js';
import { NetworkError } from './driver.js';

function fileOf(p: PublishedPort): string {
  return `${p.protocol.toLowerCase()}_${p.hostIP ?? ANY_IPV4}_${p.hostPort}`;
}

function parse(name: string): PublishedPort | undefined {
  const m = /^(tcp|udp)_([0-9.]+)_(\d+)$/.exec(name);
  if (!m) return undefined;
  return { protocol: m[1] === 'udp' ? 'UDP' : 'TCP', hostIP: m[2] === ANY_IPV4 ? undefined : m[2], hostPort: Number(m[3]), containerPort: 0 };
}

export class PortClaims {
  constructor(private readonly dir: string) {}

  /** Every claim: file name → container id. */
  all(): Map<string, string> {
    const out = new Map<string, string>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const n of names) {
      try {
        out.set(n, readSmallFileNow(path.join(this.dir, n)).trim());
      } catch {
        /* released meanwhile */
      }
    }
    return out;
  }

  /**
   * Claims the ports for `id` (those it already holds are kept). Throws PortConflict naming the
   * holder, or PortInUse when a process of the node listens there; claims nothing then.
   */
  async claim(id: string, key: string, ports: readonly PublishedPort[], holderKey: (id: string) => string): Promise<void> {
    const want = publishedOnly(ports);
    const claims = this.all();
    const fresh: PublishedPort[] = [];
    for (const p of want) {
      for (const [name, holder] of claims) {
        const other = parse(name);
        if (other && holder !== id && sameClaim(other, p)) {
          throw new NetworkError(
            'PortConflict',
            `${formatPort(p)} of ${key}: ${other.hostIP ?? ANY_IPV4}:${other.hostPort}/${other.protocol} is already published by ${holderKey(holder)}`,
          );
        }
      }
      if (claims.get(fileOf(p)) !== id) fresh.push(p);
    }
    for (const p of fresh) {
      if (await inUseOnNode(p))
        throw new NetworkError('PortInUse', `${formatPort(p)} of ${key}: ${p.hostIP ?? ANY_IPV4}:${p.hostPort}/${p.protocol} is in use on the node`);
    }
    await makeDirs([this.dir]);
    const made: string[] = [];
    try {
      for (const p of fresh) {
        const file = path.join(this.dir, fileOf(p));
        const fd = openSync(file, 'wx', 0o600);
        made.push(file);
        writeSync(fd, `${id}\n`);
        closeSync(fd);
      }
    } catch (err) {
      await removePaths(made);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new NetworkError('PortConflict', `a port of ${key} was claimed by another container meanwhile`, { cause: err });
      throw err;
    }
  }

  /** Releases the claims of `id` not in `keep`. */
  async release(id: string, keep: readonly PublishedPort[] = []): Promise<void> {
    const kept = new Set(publishedOnly(keep).map(fileOf));
    const drop = [...this.all()].filter(([n, holder]) => holder === id && !kept.has(n)).map(([n]) => path.join(this.dir, n));
    await removePaths(drop);
  }

  holders(): Set<string> {
    return new Set(this.all().values());
  }
}

/** Whether binding the host socket fails with EADDRINUSE (a process of the node uses it). */
export function inUseOnNode(p: PublishedPort): Promise<boolean> {
  const host = p.hostIP ?? ANY_IPV4;
  return new Promise((resolve) => {
    if (p.protocol === 'UDP') {
      const s = dgram.createSocket('udp4');
      s.once('error', (err: NodeJS.ErrnoException) => {
        s.close();
        resolve(err.code === 'EADDRINUSE');
      });
      s.bind({ address: host, port: p.hostPort, exclusive: true }, () => s.close(() => resolve(false)));
      return;
    }
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    srv.listen({ host, port: p.hostPort, exclusive: true }, () => srv.close(() => resolve(false)));
  });
}
