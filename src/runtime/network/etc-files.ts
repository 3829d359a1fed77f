/**
 * /etc/hosts, /etc/hostname and /etc/resolv.conf of a bridge container, written by acetate into
 * the container's run dir and bind-mounted over the container's own (as Docker and Podman do).
 * They are files acetate writes, never paths of the node's /run, which a container may not see.
 *
 * resolv.conf comes from the node's; a loopback resolver (systemd-resolved's 127.0.0.53, a local
 * dnsmasq on 127.0.0.1) cannot be reached from the container's namespace, so it is replaced by the
 * upstream servers systemd-resolved lists in /run/systemd/resolve/resolv.conf, else by public
 * resolvers, as Docker does.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeDirs, writeSmallFileAtomic } from '../../util/small-file.js';

/** Where systemd-resolved writes the real upstream servers. */
export const RESOLVED_UPSTREAM = '/run/systemd/resolve/resolv.conf';
export const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

/** The node's resolv.conf made usable from another network namespace. Pure. */
export function containerResolvConf(node: string, upstream: string | undefined): string {
  const lines = node.split('\n');
  const servers = (text: string) =>
    text
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => !!s);
  const nodeServers = servers(node);
  const usable = nodeServers.filter((s) => !isLoopback(s));
  let replacement: string[] = [];
  if (usable.length === 0) {
    const up = upstream ? servers(upstream).filter((s) => !isLoopback(s)) : [];
    replacement = up.length ? up : FALLBACK_NAMESERVERS;
  }
  const kept = lines.filter((l) => !/^\s*nameserver\s/.test(l) || !isLoopback(/^\s*nameserver\s+(\S+)/.exec(l)?.[1] ?? ''));
  const body = kept.join('\n').trimEnd();
  const extra = replacement.map((s) => `nameserver ${s}`).join('\n');
  return `${[body, extra].filter(Boolean).join('\n')}\n`;
}

/** Without an address yet (a first start: it comes from the plugins), the name is left out. */
export function hostsFile(hostname: string, ip: string | undefined): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    ...(ip ? [`${ip}\t${hostname}`] : []),
    '',
  ].join('\n');
}

/** The hosts file rewritten in place (same inode): a bind mount of it shows the new content. */
export function rewriteHosts(file: string, hostname: string, ip: string): void {
  writeFileSync(file, hostsFile(hostname, ip), { mode: 0o644 });
}

function readOr(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Writes the three files into `dir` and returns their paths. */
export async function writeEtcFiles(
  dir: string,
  opts: { hostname: string; ip: string | undefined; hostRoot?: string },
): Promise<{ hosts: string; hostname: string; resolvConf: string }> {
  await makeDirs([dir]);
  const root = opts.hostRoot ?? '/';
  const node = readOr(path.join(root, 'etc/resolv.conf')) ?? '';
  const out = { hosts: path.join(dir, 'hosts'), hostname: path.join(dir, 'hostname'), resolvConf: path.join(dir, 'resolv.conf') };
  // 0644: processes of any user inside the container read them.
  await writeSmallFileAtomic(out.hosts, hostsFile(opts.hostname, opts.ip), 0o644);
  await writeSmallFileAtomic(out.hostname, `${opts.hostname}\n`, 0o644);
  await writeSmallFileAtomic(out.resolvConf, containerResolvConf(node, readOr(path.join(root, RESOLVED_UPSTREAM.slice(1)))), 0o644);
  return out;
}
