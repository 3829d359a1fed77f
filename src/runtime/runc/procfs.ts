/** What the host gives containers, read from /proc: the open-files limit and the capability bounding set. */
import { readFile } from 'node:fs/promises';
import { ALL_CAPABILITIES } from '../../api/capabilities.js';

/** The process's hard RLIMIT_NOFILE, from /proc/self/limits. */
export async function hostNofileHard(): Promise<number> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('Max open files'));
    const fields = line?.trim().split(/\s+/) ?? [];
    const hard = fields[4];
    if (hard === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(hard);
    return Number.isSafeInteger(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

/** Capability names in a /proc status hex mask (bit n = capability number n). */
export function capabilitiesOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  return ALL_CAPABILITIES.filter((_c, i) => (mask >> BigInt(i)) & 1n);
}

/** The capability bounding set of this process (what it can give to containers). */
export async function readBoundingCapabilities(): Promise<string[]> {
  try {
    const text = await readFile('/proc/self/status', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('CapBnd:'));
    return line ? capabilitiesOfMask(line.slice('CapBnd:'.length)) : [...ALL_CAPABILITIES];
  } catch {
    return [...ALL_CAPABILITIES];
  }
}
