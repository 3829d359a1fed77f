/**
 * The spec hash recorded with every container (api/hash.ts) must not change when its code does:
 * a changed text would make every container on the node look edited (a plan full of replaces).
 * canonicalJson is checked, byte for byte, against the way the recorded hashes were made (a
 * JSON.stringify replacer that rebuilt each object with sorted entries) on many generated values.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { canonicalJson, hashOf, sameJson } from '../../src/api/hash.js';

/** How the hashes were made before (and still must be). */
function reference(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Keys an object orders in its own way (array indexes first), next to ordinary ones. */
const KEYS = ['a', 'b', 'Z', '0', '1', '10', '9', '01', '-1', '4294967294', '4294967295', '1.5', 'é', '\u2028', 'key"q', '', 'x y', '2'];
const LEAVES = [
  null,
  true,
  false,
  0,
  -0,
  7,
  -3.25,
  1e21,
  NaN,
  Infinity,
  's',
  'with "quotes"',
  'nl\n',
  '\u0000',
  '\ud800',
  'é',
  '',
  undefined,
  new Date(0),
  Object('boxed'),
  Object(3),
  // eslint-disable-next-line no-sparse-arrays -- a hole is written as null
  [1, , 3],
  { toJSON: (key: string) => `called for ${key}` },
  { toJSON: () => ({ z: 1, a: 2 }) },
  { toJSON: () => undefined },
];

function generator(seed: number): (depth?: number) => unknown {
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return (seed >>> 12) % n; // the high bits: an LCG's low bits repeat with a short period
  };
  const gen = (depth = 0): unknown => {
    const t = rnd(depth > 3 ? 2 : 4);
    if (t < 2) return LEAVES[rnd(LEAVES.length)];
    if (t === 2) {
      const o: Record<string, unknown> = {};
      for (let i = rnd(6); i > 0; i--) o[KEYS[rnd(KEYS.length)]!] = gen(depth + 1);
      return o;
    }
    return Array.from({ length: rnd(5) }, () => gen(depth + 1));
  };
  return gen;
}

describe('canonicalJson: the text spec hashes are made of', () => {
  it('is the text the recorded hashes were made with, on 20,000 generated values', () => {
    const gen = generator(7);
    for (let i = 0; i < 20_000; i++) {
      const v = gen();
      assert.equal(canonicalJson(v), reference(v), JSON.stringify(v));
    }
  });

  it('orders keys, puts array indexes first, leaves out undefined and functions, honours toJSON', () => {
    const v = { b: 1, a: { d: [undefined, () => 1, { y: 2, x: 1 }], c: undefined }, 10: 'ten', 9: 'nine', when: new Date(0), f: () => 1 };
    assert.equal(canonicalJson(v), '{"9":"nine","10":"ten","a":{"d":[null,null,{"x":1,"y":2}]},"b":1,"when":"1970-01-01T00:00:00.000Z"}');
    assert.equal(canonicalJson(v), reference(v));
    // A spec's hash as earlier builds recorded it stays what it was.
    const spec = { template: 'host', resources: { memoryBytes: 16777216, pids: 16 }, command: ['/bin/sh'] };
    assert.equal(hashOf(spec), createHash('sha256').update(reference(spec)).digest('hex').slice(0, 16));
  });
});

/** The value JSON.stringify writes of `v`, read back (undefined when it writes nothing). */
function roundTrip(v: unknown): unknown {
  const text = JSON.stringify(v);
  return text === undefined ? undefined : (JSON.parse(text) as unknown);
}

/** A deep copy with every object's keys in another order (the same JSON value). */
function reordered(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reordered);
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .reverse()
      .map(([k, x]) => [k, reordered(x)]),
  );
}

describe('sameJson: equal canonical texts, without writing them', () => {
  it('agrees with comparing canonicalJson texts on 20,000 generated pairs (equal ones in another key order, and near ones)', () => {
    const gen = generator(11);
    let equal = 0;
    for (let i = 0; i < 20_000; i++) {
      const a = gen();
      const b = i % 3 === 0 ? gen() : i % 3 === 1 ? reordered(a) : reordered(roundTrip(a));
      const want = canonicalJson(a) === canonicalJson(b);
      if (want) equal++;
      assert.equal(sameJson(a, b), want, `${canonicalJson(a)} vs ${canonicalJson(b)}`);
    }
    assert.ok(equal > 5_000 && equal < 19_000, `both outcomes are exercised: ${equal} equal`);
  });

  it('an undefined property is no property; in an array it is null; a changed leaf deep down is a difference', () => {
    assert.equal(sameJson({ a: 1, b: undefined }, { a: 1 }), true);
    assert.equal(sameJson([undefined], [null]), true);
    assert.equal(sameJson({ a: { b: [1, { c: 2 }] } }, { a: { b: [1, { c: 3 }] } }), false);
    assert.equal(sameJson({ a: 1 }, { a: 1, b: 2 }), false);
    assert.equal(sameJson([1, 2], [1, 2, 3]), false);
    assert.equal(sameJson({ 0: 'x' }, ['x']), false);
  });
});
