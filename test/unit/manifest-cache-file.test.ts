/**
 * Caches kept across processes for get and plan (sources/files/manifest-cache-file.ts and
 * ParsedFileCache's export/import, which runtime/runc/read-cache.ts saves): an entry is used only
 * while its file is the same, the whole cache only under the same settings, and a broken file is
 * ignored.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadManifestDir, ManifestCache } from '../../src/sources/files/load.js';
import { loadManifestCacheFile, manifestFingerprint, saveManifestCacheFile } from '../../src/sources/files/manifest-cache-file.js';
import { ParsedFileCache, RACY_MS } from '../../src/util/stat-cache.js';

const manifest = (name: string, memory: string): string => `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: host
  command: ["/bin/sleep", "1000"]
  network: bridge
  env: [{ name: A, value: "1" }]
  ports: [{ containerPort: 80, hostPort: 8080 }]
  readinessProbe: { tcpSocket: { port: 80 } }
  resources: { memory: ${memory}, cpu: 250m, pids: 32 }
`;

async function stampBack(file: string, secondsAgo: number): Promise<void> {
  const t = Date.now() / 1000 - secondsAgo;
  await utimes(file, t, t);
}
const later = (): number => Date.now() + RACY_MS + 1000;

describe('caches kept across processes', () => {
  let dir: string;
  let tree: string;
  let cacheFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-pcache-'));
    tree = path.join(dir, 'm');
    cacheFile = path.join(dir, 'manifest-cache.json');
    await (await import('node:fs/promises')).mkdir(tree);
    await writeFile(path.join(tree, 'a.yaml'), manifest('a', '64Mi'));
    await writeFile(path.join(tree, 'b.yaml'), manifest('b', '32Mi'));
    await stampBack(path.join(tree, 'a.yaml'), 20);
    await stampBack(path.join(tree, 'b.yaml'), 20);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const opts = { nodeName: 'n1' };
  const fp = manifestFingerprint(opts);

  it('a saved manifest cache gives what parsing gives, and a changed file is parsed again', async () => {
    const writer = new ManifestCache({ now: later });
    const parsed = await loadManifestDir(tree, { ...opts, cache: writer });
    assert.equal(parsed.containers.size, 2, JSON.stringify(parsed.problems));
    await saveManifestCacheFile(cacheFile, fp, writer);

    const reader = new ManifestCache({ now: later });
    assert.equal(loadManifestCacheFile(cacheFile, fp, reader), true);
    assert.equal(reader.size, 2, 'both files loaded from the cache file');
    const generation = reader.generation;
    const cached = await loadManifestDir(tree, { ...opts, cache: reader });
    assert.equal(reader.generation, generation, 'nothing parsed again: both entries used');
    assert.deepEqual(cached.containers, parsed.containers, 'the same desired containers, field by field');
    assert.deepEqual(cached.problems, parsed.problems);

    // Edited after the cache was saved: its entry no longer matches the file.
    await writeFile(path.join(tree, 'a.yaml'), manifest('a', '128Mi'));
    await stampBack(path.join(tree, 'a.yaml'), 10);
    const edited = await loadManifestDir(tree, { ...opts, cache: reader });
    assert.equal(edited.containers.get('default/a')?.spec.resources.memoryBytes, 128 * 2 ** 20, `the file as it is now: ${JSON.stringify(edited.problems)}`);
    assert.equal(edited.containers.get('default/b')?.spec.resources.memoryBytes, 32 * 2 ** 20);
  });

  it('a file read while too young is kept once settled only if its bytes are the ones parsed; nothing is parsed again', async () => {
    let now = Date.now();
    const cache = new ManifestCache({ now: () => now });
    const file = path.join(tree, 'a.yaml');
    await writeFile(file, manifest('a', '96Mi')); // young: its stamp is now
    const first = await cache.load(file, opts);
    assert.equal(cache.isKept(file), false, 'too young to be kept');
    assert.equal(cache.keepIfSettled(file), false, 'still too young');
    now += RACY_MS + 1000;
    const generation = cache.generation;
    assert.equal(cache.keepIfSettled(file), true);
    assert.equal(cache.generation, generation + 1);
    assert.equal(await cache.load(file, opts), first, 'the very result read before: not parsed again');

    // Rewritten (another stamp) between the read and the settling: not kept, the next read parses it.
    const other = path.join(tree, 'b.yaml');
    await writeFile(other, manifest('b', '48Mi'));
    now = Date.now();
    await cache.load(other, opts);
    await writeFile(other, manifest('b', '40Mi'));
    now += RACY_MS + 1000;
    assert.equal(cache.keepIfSettled(other), false);
    assert.equal((await cache.load(other, opts)).containers[0]?.spec.resources.memoryBytes, 40 * 2 ** 20);
  });

  it('is not used under other settings (node name, ACETATE_* variables), nor when broken', async () => {
    const writer = new ManifestCache({ now: later });
    await loadManifestDir(tree, { ...opts, cache: writer });
    await saveManifestCacheFile(cacheFile, fp, writer);
    assert.notEqual(manifestFingerprint({ nodeName: 'n2' }), fp);
    assert.notEqual(manifestFingerprint({ ...opts, env: { ...process.env, ACETATE_DEFAULT_DISK: '1Gi' } }), fp);
    assert.notEqual(manifestFingerprint({ ...opts, env: { ...process.env, ACETATE_SOMETHING_NEW: '1' } }), fp, 'an unknown variable counts');
    // The loop's timings and the systemd unit's command line decide nothing in a manifest's reading.
    assert.equal(manifestFingerprint({ ...opts, env: { ...process.env, ACETATE_BACKOFF_BASE_MS: '60000', ACETATE_OPTS: '--concurrency 8' } }), fp);
    assert.equal(loadManifestCacheFile(cacheFile, manifestFingerprint({ nodeName: 'n2' }), new ManifestCache()), false);
    await writeFile(cacheFile, '{"version":1,"fingerprint":"');
    const reader = new ManifestCache();
    assert.equal(loadManifestCacheFile(cacheFile, fp, reader), false);
    assert.equal(reader.size, 0);
    assert.equal(loadManifestCacheFile(path.join(dir, 'none.json'), fp, reader), false);
  });

  it("the node's addresses are not in the fingerprint: an entry that checked a hostIP is used only while its verdict holds", async () => {
    // A node that gains an address after the loop started (its own bridge's gateway, a lease).
    let node = { addresses: ['127.0.0.1'], localRanges: ['127.0.0.1/8'] };
    const capacity = { memoryBytes: 2 ** 34, addresses: () => node };
    const withIP = manifest('c', '64Mi').replace('hostPort: 8080 }', 'hostPort: 8080, hostIP: 192.0.2.7 }');
    await writeFile(path.join(tree, 'c.yaml'), withIP);
    await stampBack(path.join(tree, 'c.yaml'), 20);
    const loopFp = manifestFingerprint({ ...opts, capacity });
    const writer = new ManifestCache({ now: later });
    const before = await loadManifestDir(tree, { ...opts, capacity, cache: writer });
    assert.deepEqual([...before.containers.keys()].sort(), ['default/a', 'default/b']);
    assert.match(
      before.problems.map((p) => `${p.line}: ${p.field}: ${p.message}`).join('\n'),
      /^\d+: spec\.ports\[0\]\.hostIP: 192\.0\.2\.7 is not an address of this node/m,
    );
    await saveManifestCacheFile(cacheFile, loopFp, writer);

    node = { addresses: ['127.0.0.1', '192.0.2.7'], localRanges: ['127.0.0.1/8'] };
    // Another process looks at another set of addresses: the same fingerprint; none at all: another.
    const elsewhere = { memoryBytes: 2 ** 34, addresses: () => ({ addresses: ['10.9.9.9'], localRanges: [] }) };
    assert.equal(manifestFingerprint({ ...opts, capacity: elsewhere }), loopFp, 'other addresses, the same fingerprint');
    assert.notEqual(manifestFingerprint({ ...opts, capacity: { memoryBytes: 2 ** 34 } }), loopFp, 'hostIPs not checked at all: another');
    const reader = new ManifestCache({ now: later });
    assert.equal(loadManifestCacheFile(cacheFile, loopFp, reader), true);
    const generation = reader.generation;
    const after = await loadManifestDir(tree, { ...opts, capacity, cache: reader });
    assert.deepEqual([...after.containers.keys()].sort(), ['default/a', 'default/b', 'default/c'], JSON.stringify(after.problems));
    assert.equal(after.problems.length, 0);
    assert.equal(reader.generation, generation + 1, "only the file whose hostIP became the node's was parsed again");

    node = { addresses: ['127.0.0.1'], localRanges: ['127.0.0.1/8'] };
    const gone = await loadManifestDir(tree, { ...opts, capacity, cache: reader });
    assert.equal(gone.containers.has('default/c'), false, 'the address gone: refused again');
  });

  it('one look at the addresses per file: its refusals and the verdicts kept with them agree', async () => {
    // Two documents with one hostIP, the address appearing between two looks: had each document
    // looked for itself, the first would be refused and the verdict kept say "the node's".
    let looks = 0;
    const capacity = { addresses: () => ({ addresses: looks++ === 0 ? ['127.0.0.1'] : ['127.0.0.1', '192.0.2.9'], localRanges: [] }) };
    const ip = (name: string) => manifest(name, '64Mi').replace('hostPort: 8080 }', 'hostPort: 8080, hostIP: 192.0.2.9 }');
    const file = path.join(tree, 'two.yaml');
    await writeFile(file, `${ip('x')}---\n${ip('y')}`);
    await stampBack(file, 20);
    const cache = new ManifestCache({ now: later });
    const r = await cache.load(file, { ...opts, capacity });
    assert.equal(looks, 1, 'looked once for the file');
    assert.deepEqual(r.hostIPs, { '192.0.2.9': false });
    assert.equal(r.problems.length, 2, 'both refused by the same look');
    assert.notEqual(await cache.load(file, { ...opts, capacity }), r, 'the address there now: the kept verdict fails, read again');
  });

  it('ParsedFileCache entries exported by one process are used by another only while the file is the same', async () => {
    const f = path.join(dir, 'x.json');
    await writeFile(f, '{"v":1}');
    await stampBack(f, 20);
    const first = new ParsedFileCache((t) => JSON.parse(t) as { v: number }, { now: later });
    assert.equal(first.read(f)?.v, 1);
    const exported = JSON.parse(JSON.stringify(first.exportEntries(dir))) as ReturnType<typeof first.exportEntries>;
    assert.equal(exported.length, 1);
    assert.deepEqual(first.exportEntries(path.join(dir, 'elsewhere')), [], 'only the entries under the dir asked for');

    let parses = 0;
    const second = new ParsedFileCache((t) => (parses++, JSON.parse(t) as { v: number }), { now: later });
    second.importEntries(exported);
    assert.equal(second.read(f)?.v, 1);
    assert.equal(parses, 0, 'unchanged: the imported value');
    await writeFile(f, '{"v":22}');
    await stampBack(f, 10);
    assert.equal(second.read(f)?.v, 22, 'changed: read again');
    assert.equal(parses, 1);
  });
});
