/**
 * Which container publishes which host port: one file per claim in `<stateDir>/network/ports`,
 * `<protocol>_<hostIP>_<hostPort>` holding the container id and, on its second line, the process
 * that holds the socket open (port-holders.ts). The file is created with O_EXCL, so two claims of
 * the same socket in one instance cannot both succeed; the held socket itself is what two acetate
 * instances, and every other process of the node, meet: a second bind fails with EADDRINUSE.
 * 0.0.0.0 overlaps every address, so it is checked against every claim of the same port.
 */
import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ANY_IPV4, formatPort, publishedOnly, sameClaim } from '../../api/ports.js';
import type { PublishedPort } from '../../api/types.js';
import { makeDirs, readSmallFileNow, removePaths, writeSmallFileAtomic } from '../../util/small-file.js';
import { NetworkError } from './driver.js';
import { findProcessesByCmdline, liveStartTimeNow } from '../../util/processes.js';
import { formatHolder, holdHostPort, holderAlive, parseHolder, releaseHolder, type PortHolder } from './port-holders.js';

/** argv[0] of a holder: this, then its claim file's path. */
const HOLDER_LABEL = 'acetate-port-holder:';

function fileOf(p: PublishedPort): string {
  return `${p.protocol.toLowerCase()}_${p.hostIP ?? ANY_IPV4}_${p.hostPort}`;
}

function parse(name: string): PublishedPort | undefined {
  const m = /^(tcp|udp)_([0-9.]+)_(\d+)$/.exec(name);
  if (!m) return undefined;
  return { protocol: m[1] === 'udp' ? 'UDP' : 'TCP', hostIP: m[2] === ANY_IPV4 ? undefined : m[2], hostPort: Number(m[3]), containerPort: 0 };
}

export interface Claim {
  /** Container id. */
  id: string;
  holder?: PortHolder;
}

export class PortClaims {
  constructor(
    private readonly dir: string,
    /** Where a new holder process goes (see CniDriverOptions.placeHolder). */
    private readonly placeHolder?: (pid: number) => Promise<void>,
  ) {}

  /** Every claim: file name → container id and holder. */
  claims(): Map<string, Claim> {
    const out = new Map<string, Claim>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const n of names) {
      try {
        const [id, holder] = readSmallFileNow(path.join(this.dir, n)).split('\n');
        const h = parseHolder(holder);
        out.set(n, { id: id!.trim(), ...(h ? { holder: h } : {}) });
      } catch {
        /* released meanwhile */
      }
    }
    return out;
  }

  /** Every claim: file name → container id. */
  all(): Map<string, string> {
    return new Map([...this.claims()].map(([n, c]) => [n, c.id]));
  }

  /**
   * Claims the ports for `id` and holds them open (those it already holds are kept; a holder found
   * gone is started again). Throws PortConflict naming the holder, or PortInUse when a process of
   * the node (or another acetate instance) has the port; claims nothing new then.
   */
  async claim(id: string, key: string, ports: readonly PublishedPort[], holderKey: (id: string) => string): Promise<void> {
    const want = publishedOnly(ports);
    const claims = this.claims();
    const fresh: PublishedPort[] = [];
    const rehold: PublishedPort[] = [];
    for (const p of want) {
      for (const [name, c] of claims) {
        const other = parse(name);
        if (other && c.id !== id && sameClaim(other, p)) {
          throw new NetworkError(
            'PortConflict',
            `${formatPort(p)} of ${key}: ${other.hostIP ?? ANY_IPV4}:${other.hostPort}/${other.protocol} is already published by ${holderKey(c.id)}`,
          );
        }
      }
      const mine = claims.get(fileOf(p));
      if (mine?.id !== id) fresh.push(p);
      else if (!mine.holder || !holderAlive(mine.holder)) rehold.push(p);
    }
    if (!fresh.length && !rehold.length) return;
    await makeDirs([this.dir]);
    const made: string[] = [];
    const held: PortHolder[] = [];
    try {
      for (const p of fresh) {
        const file = path.join(this.dir, fileOf(p));
        const fd = openSync(file, 'wx', 0o600);
        made.push(file);
        writeSync(fd, `${id}\n`);
        closeSync(fd);
      }
      for (const p of [...fresh, ...rehold]) {
        const file = path.join(this.dir, fileOf(p));
        const h = await this.hold(p, key, file);
        held.push(h);
        await writeSmallFileAtomic(file, `${id}\n${formatHolder(h)}\n`);
      }
    } catch (err) {
      for (const h of held) await releaseHolder(h).catch(() => undefined);
      await removePaths(made);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new NetworkError('PortConflict', `a port of ${key} was claimed by another container meanwhile`, { cause: err });
      throw err;
    }
  }

  private async hold(p: PublishedPort, key: string, file: string): Promise<PortHolder> {
    const where = `${p.hostIP ?? ANY_IPV4}:${p.hostPort}/${p.protocol}`;
    try {
      return await holdHostPort(p, `${HOLDER_LABEL}${file}`, this.placeHolder);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new NetworkError('PortInUse', `${formatPort(p)} of ${key}: ${where} is in use on the node`, { cause: err });
      if (code === 'EADDRNOTAVAIL')
        throw new NetworkError('NetworkSetupFailed', `${formatPort(p)} of ${key}: ${p.hostIP} is not an address of this node`, { cause: err });
      throw new NetworkError('NetworkSetupFailed', `${formatPort(p)} of ${key}: cannot hold ${where} open: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Releases the claims of `id` not in `keep`: their holders end (the sockets close), then the files go. */
  async release(id: string, keep: readonly PublishedPort[] = []): Promise<void> {
    const kept = new Set(publishedOnly(keep).map(fileOf));
    for (const [n, c] of this.claims()) {
      if (c.id !== id || kept.has(n)) continue;
      if (c.holder) await releaseHolder(c.holder);
      await removePaths([path.join(this.dir, n)]);
    }
  }

  /** Ports `id` claims whose holder is gone (killed by hand, or a reboot): the port is not held. */
  unheld(id: string): string[] {
    return [...this.claims()].filter(([, c]) => c.id === id && !(c.holder && holderAlive(c.holder))).map(([n]) => n);
  }

  /**
   * Holders of this instance's ports that no claim names (acetate killed between starting one and
   * writing it down, or a claim file removed by hand): ended, so the port is not held for no one.
   * Scans /proc: for garbage collection only.
   */
  async endStrayHolders(): Promise<number> {
    const claims = this.claims();
    let n = 0;
    for (const p of await findProcessesByCmdline(`${HOLDER_LABEL}${this.dir}/`)) {
      const name = p.cmdline.split(' ')[0]!.slice(`${HOLDER_LABEL}${this.dir}/`.length);
      const recorded = claims.get(name)?.holder;
      if (recorded?.pid === p.pid) continue;
      const startTime = liveStartTimeNow(p.pid);
      if (startTime === undefined) continue;
      await releaseHolder({ pid: p.pid, startTime });
      n++;
    }
    return n;
  }

  holders(): Set<string> {
    return new Set(this.all().values());
  }
}
