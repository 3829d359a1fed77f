/**
 * The node's IPv4 routes, from /proc/net/route (main table: what `ip -4 route` shows), read
 * without spawning `ip`: a subnet for the containers must not meet one of them (node-config.ts).
 */
import { readFileSync } from 'node:fs';
import type { NodeRoute } from './node-config.js';

/** A /proc/net/route address: 8 hex digits, little-endian on the hosts acetate runs on. */
function hexToIp(hex: string): string {
  const n = parseInt(hex, 16);
  return [0, 8, 16, 24].map((s) => (n >>> s) & 255).join('.');
}

function maskLength(hex: string): number {
  let n = parseInt(hex, 16) >>> 0;
  let bits = 0;
  while (n) {
    bits += n & 1;
    n >>>= 1;
  }
  return bits;
}

/** Routes up (RTF_UP); none when /proc/net/route cannot be read (not Linux). */
export function readNodeRoutes(file = '/proc/net/route'): NodeRoute[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: NodeRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !(parseInt(f[3]!, 16) & 1)) continue;
    out.push({ dev: f[0]!, dst: `${hexToIp(f[1]!)}/${maskLength(f[7]!)}` });
  }
  return out;
}
