import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted, so equal values always serialise the same.
 *
 * The text is the one `JSON.stringify(value, replacer)` gave with a replacer that rebuilt each
 * object with its entries sorted (what the recorded spec hashes were made with, so it must not
 * change by a byte): keys in code-unit order, except that an object lists array-index keys
 * ("0", "12") first, in numeric order, whatever order they are set in; undefined, functions and
 * symbols left out of objects and null in arrays; toJSON() honoured. Written out by hand because
 * the replacer (an object and a sorted array per object) was most of a `plan` over 2,500
 * containers' hashing (70 ms); this is a third of that.
 */
export function canonicalJson(value: unknown): string {
  return write(value, '') as string;
}

/** `v`, the value of property `key` of its holder, as JSON.stringify writes it (undefined: left out). */
function write(v: unknown, key: string): string | undefined {
  if ((v !== null && typeof v === 'object') || typeof v === 'bigint') {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') v = (toJSON as (k: string) => unknown).call(v, key);
  }
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += `${i ? ',' : ''}${write(v[i], String(i)) ?? 'null'}`;
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (!isSorted(keys)) keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let out = '{';
  let first = true;
  for (const k of indexKeysFirst(keys)) {
    const text = write(o[k], k);
    if (text === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${text}`;
    first = false;
  }
  return `${out}}`;
}

function isSorted(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}

/** Array-index keys (canonical integers below 2³²−1) first, in numeric order, as an object orders its own keys. */
function indexKeysFirst(sorted: string[]): string[] {
  if (!sorted.some(isIndexKey)) return sorted;
  const index = sorted.filter(isIndexKey).sort((a, b) => Number(a) - Number(b));
  return [...index, ...sorted.filter((k) => !isIndexKey(k))];
}

function isIndexKey(k: string): boolean {
  const c = k.charCodeAt(0);
  return c >= 0x30 && c <= 0x39 && /^(?:0|[1-9]\d{0,9})$/.test(k) && Number(k) < 2 ** 32 - 1;
}

/**
 * Whether canonicalJson(a) === canonicalJson(b), found without writing either out: a walk that
 * stops at the first difference (a plan compares each desired spec with the applied one; writing
 * both out and hashing them was most of a `plan` over 2,500 containers). Anything but plain
 * objects and arrays (a Date, a boxed string, a toJSON) is compared by its text.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  return same(a, b, '');
}

/** sameJson of `a` and `b`, the values of property `key` of their holders (a toJSON is given it). */
function same(a: unknown, b: unknown, key: string): boolean {
  if (a === b) return true;
  const ao = a !== null && typeof a === 'object';
  const bo = b !== null && typeof b === 'object';
  if ((ao && !plain(a)) || (bo && !plain(b))) return write(a, key) === write(b, key);
  if (!ao || !bo) return !ao && !bo && JSON.stringify(a) === JSON.stringify(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const y = b as unknown[];
    if (a.length !== y.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(asArrayItem(a[i], String(i)), asArrayItem(y[i], String(i)), String(i))) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let count = 0;
  for (const k of Object.keys(x)) {
    if (omitted(x[k], k)) continue;
    count++;
    if (!Object.prototype.hasOwnProperty.call(y, k) || omitted(y[k], k) || !same(x[k], y[k], k)) return false;
  }
  for (const k of Object.keys(y)) if (!omitted(y[k], k)) count--;
  return count === 0;
}

/** A plain object or array without toJSON: JSON.stringify writes its own properties. */
function plain(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return false;
  return typeof (v as { toJSON?: unknown }).toJSON !== 'function';
}

/** Left out of an object by JSON.stringify (as the value of `key`: a toJSON may give undefined). */
function omitted(v: unknown, key: string): boolean {
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return true;
  return v !== null && typeof v === 'object' && !plain(v) && write(v, key) === undefined;
}

/** What JSON.stringify writes in an array for a value it leaves out of an object: null. */
function asArrayItem(v: unknown, key: string): unknown {
  return omitted(v, key) ? null : v;
}

/** A short, stable hash of any JSON value (used for the applied spec hash annotation). */
export function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16);
}

const remembered = new WeakMap<object, string>();

/**
 * hashOf(value), remembered per object: a controller plans the same (unchanged) desired and
 * applied specs every pass, and the runtime checks each record's hash once. For values that
 * are not changed once made (specs, records), so this stays pure.
 */
export function hashOfUnchanging(value: object): string {
  let h = remembered.get(value);
  if (h === undefined) remembered.set(value, (h = hashOf(value)));
  return h;
}
