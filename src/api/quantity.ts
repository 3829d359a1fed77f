/**
 * Kubernetes-style resource quantities: "500m" CPU, "256Mi" memory. Parsing only what the CRD's
 * patterns admit, so a value that passed validation always parses.
 */

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

export const MEMORY_PATTERN = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|[eE][0-9]+)?$/;
/**
 * A CPU quantity by Kubernetes' quantity grammar (unsigned): cores, millicores (`500m`), a decimal
 * SI suffix (`1k`) or a decimal exponent (`1e3`, `5e-1`). YAML reads `cpu: 1e3` as the number 1000,
 * so the string "1e3" means the same; both are then checked against what the node has.
 */
export const CPU_PATTERN = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$/;

export class QuantityError extends Error {}

/** Parse a memory quantity to bytes (rounded up to a whole byte). */
export function parseMemory(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q) || q < 0) throw new QuantityError(`'${q}' is not a quantity such as 512Mi`);
    if (!Number.isSafeInteger(Math.ceil(q))) throw new QuantityError(`'${q}' is too large`);
    return Math.ceil(q);
  }
  const m = MEMORY_PATTERN.exec(q.trim());
  if (!m) throw new QuantityError(`'${q}' is not a quantity such as 512Mi`);
  const num = Number(m[1]);
  const suffix = m[3] ?? '';
  let mult = 1;
  if (suffix in BINARY) mult = BINARY[suffix]!;
  else if (suffix in DECIMAL) mult = DECIMAL[suffix]!;
  else if (/^[eE]/.test(suffix)) mult = 10 ** Number(suffix.slice(1));
  const bytes = Math.ceil(num * mult);
  if (!Number.isSafeInteger(bytes)) throw new QuantityError(`'${q}' is too large`);
  return bytes;
}

/** "0.009" → 9, "1.5" → 1500, "0.0001" → 1: decimal arithmetic on the digits, no float error. */
function coresToMillis(cores: string): number {
  const [int = '', frac = ''] = cores.split('.');
  const millis = Number(int || '0') * 1000 + Number(frac.padEnd(3, '0').slice(0, 3));
  return /[1-9]/.test(frac.slice(3)) ? millis + 1 : millis;
}

/** cores × 10^exp in millicores, rounded up: by moving the decimal point in the digits (no float error). */
function scaledMillis(cores: string, exp: number): number {
  if (exp > 30) return Infinity; // too large either way (reported by the caller)
  const [int = '', frac = ''] = cores.split('.');
  const digits = `${int}${frac}`;
  const point = int.length + exp + 3;
  if (point <= 0) return /[1-9]/.test(digits) ? 1 : 0;
  const whole = Number(digits.slice(0, point).padEnd(point, '0') || '0');
  return /[1-9]/.test(digits.slice(point)) ? whole + 1 : whole;
}

/** Parse a CPU quantity to millicores (rounded up to a whole millicore, as Kubernetes does). */
export function parseCpu(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q) || q < 0) throw new QuantityError(`'${q}' is not a CPU quantity such as 500m or 2`);
    if (!Number.isSafeInteger(Math.ceil(q * 1000))) throw new QuantityError(`'${q}' is too large`);
    return Math.ceil(q * 1000);
  }
  const s = q.trim();
  const m = CPU_PATTERN.exec(s);
  if (!m) throw new QuantityError(`'${q}' is not a CPU quantity such as 500m or 2`);
  const suffix = m[3] ?? '';
  const millis =
    suffix === 'm'
      ? Math.ceil(Number(m[1]))
      : suffix === ''
        ? coresToMillis(m[1]!)
        : scaledMillis(m[1]!, suffix in DECIMAL ? Math.log10(DECIMAL[suffix]!) : Number(suffix.slice(1)));
  if (!Number.isSafeInteger(millis)) throw new QuantityError(`'${q}' is too large`);
  return millis;
}

/** Format millicores the way a user writes them: "2", "500m". */
export function formatCpu(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

/** Format bytes with the largest binary suffix that divides them exactly: "256Mi", "1Gi", "1000". */
export function formatMemory(bytes: number): string {
  for (const [suffix, mult] of Object.entries(BINARY).reverse()) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${suffix}`;
  }
  return String(bytes);
}

/** XFS's smallest data section (4096 blocks of 4 KiB): a disk limit below it cannot be formatted. */
export const MIN_DISK_BYTES = 16 * 2 ** 20;
/** The granularity of a disk image: sizes are rounded up to whole 4 KiB filesystem blocks. */
export const DISK_BLOCK = 4096;

/** Parse a disk quantity to bytes, rounded up to a whole 4 KiB block (what the image really gets). */
export function parseDisk(q: string | number): number {
  return Math.ceil(parseMemory(q) / DISK_BLOCK) * DISK_BLOCK;
}
