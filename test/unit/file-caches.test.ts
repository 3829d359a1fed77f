/**
 * The caches that keep a no-op pass cheap must never serve stale content: a changed file is read
 * again, a file written less than RACY_MS ago is never cached, a removed file is gone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ManifestCache } from '../../src/sources/files/load.js';
import { ParsedFileCache, RACY_MS } from '../../src/util/stat-cache.js';
import { pollUntil } from '../../src/util/poll.js';

const manifest = (memory: string): string => `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: web
spec:
  template: host
  command: ["/bin/sleep", "1000"]
  resources: { memory: ${memory} }
`;

/**
 * Give a file a distinct mtime `secondsAgo` in the past (its ctime stays "now": the caches' clock
 * below runs RACY_MS + 1 s ahead, so the file counts as settled).
 */
async function stampBack(file: string, secondsAgo: number): Promise<void> {
  const t = Date.now() / 1000 - secondsAgo;
  await utimes(file, t, t);
}
const later = (): number => Date.now() + RACY_MS + 1000;

describe('file caches', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-cache-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('ParsedFileCache', () => {
    it('parses a settled file once, again after it changed, and forgets a removed one', async () => {
      const f = path.join(dir, 'a.json');
      let parses = 0;
      const cache = new ParsedFileCache((t) => (parses++, JSON.parse(t) as { v: number }), { now: later });
      await writeFile(f, '{"v":1}');
      await stampBack(f, 20);
      assert.equal(cache.read(f)?.v, 1);
      assert.equal(cache.read(f)?.v, 1);
      assert.equal(parses, 1, 'unchanged: not parsed again');
      await writeFile(f, '{"v":22}');
      await stampBack(f, 10);
      assert.equal(cache.read(f)?.v, 22, 'changed size and times: read again');
      await rm(f);
      assert.equal(cache.read(f), undefined);
      assert.equal(cache.size, 0);
    });

    it('never keeps a file written within the racy window (same size, same second)', async () => {
      const f = path.join(dir, 'b.json');
      let now = Date.now();
      const cache = new ParsedFileCache((t) => JSON.parse(t) as { v: number }, { now: () => now });
      await writeFile(f, '{"v":1}');
      assert.equal(cache.read(f)?.v, 1);
      assert.equal(cache.size, 0, 'too fresh to trust its stamp');
      // Rewritten in place with the same size: only a re-read sees it.
      await writeFile(f, '{"v":2}');
      assert.equal(cache.read(f)?.v, 2);
      now = Date.now() + RACY_MS + 1000; // from now, not from the test's start: a slow write must not eat the margin
      assert.equal(cache.read(f)?.v, 2);
      assert.equal(cache.size, 1, 'settled: kept');
    });
  });

  describe('ManifestCache', () => {
    it('reuses the result of an unchanged file, and sees an edit (same size too) once written', async () => {
      const f = path.join(dir, 'web.yaml');
      let now = later;
      const cache = new ManifestCache({ now: () => now() });
      await writeFile(f, manifest('64Mi'));
      await stampBack(f, 20);
      const first = await cache.load(f);
      assert.equal(first.containers[0]!.spec.resources.memoryBytes, 64 * 1024 * 1024);
      assert.equal(await cache.load(f), first, 'the same result object: not parsed again');
      await writeFile(f, manifest('96Mi')); // same length
      await stampBack(f, 10);
      const edited = await cache.load(f);
      assert.notEqual(edited, first);
      assert.equal(edited.containers[0]!.spec.resources.memoryBytes, 96 * 1024 * 1024);
      now = Date.now; // the real clock: the file below is fresh
      await writeFile(f, manifest('32Mi'));
      assert.equal(cache.size, 1);
      assert.equal((await cache.load(f)).containers[0]!.spec.resources.memoryBytes, 32 * 1024 * 1024, 'a fresh file is read');
      assert.equal(cache.size, 0, 'and not kept: its stamp cannot be trusted yet');
    });

    it('reports a file that disappeared as unreadable and forgets unlisted files', async () => {
      const f = path.join(dir, 'web.yaml');
      const cache = new ManifestCache({ now: later });
      await writeFile(f, manifest('64Mi'));
      await cache.load(f);
      assert.equal(cache.size, 1);
      cache.retainOnly([]);
      assert.equal(cache.size, 0);
      await cache.load(f);
      await rm(f);
      const gone = await cache.load(f);
      assert.equal(gone.containers.length, 0);
      assert.equal(gone.problems[0]?.kind, 'unreadable');
      assert.equal(cache.size, 0);
    });
  });

  describe('pollUntil with a first short interval', () => {
    it('waits 2, 4, 8... ms up to the interval, on the injected clock', async () => {
      const waits: number[] = [];
      let t = 0;
      let calls = 0;
      const ok = await pollUntil(async () => ++calls > 6, {
        timeoutMs: 10_000,
        intervalMs: 20,
        firstIntervalMs: 2,
        now: () => t,
        sleep: async (ms) => {
          waits.push(ms);
          t += ms;
        },
      });
      assert.equal(ok, true);
      assert.deepEqual(waits, [2, 4, 8, 16, 20, 20]);
    });
  });
});
