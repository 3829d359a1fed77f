/**
 * The CLI's entry (src/cli/entry.cts) runs the bundle with the code cache the build made: V8
 * takes that cache for this build's bundle, a cache of other text is never given to V8, and a
 * cache V8 refuses leaves the bundle compiled as usual.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { codeCacheOf, compileBundle, readCache } from '../../src/cli/entry.cjs';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

const BUNDLE = path.join(PACKAGE_ROOT, 'dist', 'cli', 'bundle.js');

describe('cli entry: the bundle and its code cache', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-entry-'))));
  after(async () => rm(dir, { recursive: true, force: true }));

  it("V8 takes the build's cache for the build's bundle, and the CLI runs with it", async () => {
    const cache = await readFile(`${BUNDLE}.cache`);
    assert.equal(compileBundle(BUNDLE, cache).cachedDataRejected, false);
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js'), '--version']);
    assert.match(stdout, /^acetate \d+\.\d+\.\d+/);
  });

  it('with --enable-source-maps a stack trace names the .ts files (the bundle loaded by Node itself)', async () => {
    const run = (nodeArgs: string[]) =>
      promisify(execFile)(process.execPath, [...nodeArgs, path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js'), '--state-dir', '/proc/version/x', 'get'], {
        env: { ...process.env, ACETATE_DEBUG: '1' },
      }).then(
        () => assert.fail('get on a state dir under a file succeeded'),
        (err: { stderr: string }) => err.stderr,
      );
    assert.match(await run(['--enable-source-maps']), /at .*src\/runtime\/runc\/read-containers\.ts:\d+/);
    assert.match(await run([]), /at .*dist\/cli\/bundle\.js:\d+/);
  });

  it('a cache made of other text is not given to V8, even of the same length', async () => {
    const text = await readFile(BUNDLE, 'utf8');
    // Same length (V8's own check compares only that): one letter of a comment changed.
    const other = path.join(dir, 'bundle.js');
    const i = text.indexOf('//');
    await writeFile(other, `${text.slice(0, i + 2)}${text[i + 2] === 'x' ? 'y' : 'x'}${text.slice(i + 3)}`);
    assert.equal((await readFile(other)).length, Buffer.byteLength(text));
    const script = compileBundle(other, await readFile(`${BUNDLE}.cache`));
    assert.equal(script.cachedDataRejected, undefined, 'no cache was given');
    assert.equal(compileBundle(other, codeCacheOf(other)).cachedDataRejected, false, 'its own cache is taken');
  });

  it('a damaged cache (which would crash V8) is not given to it, nor a truncated one', async () => {
    const cache = await readFile(`${BUNDLE}.cache`);
    const damaged = Buffer.from(cache);
    for (let i = 128 + 100; i < damaged.length; i += 97) damaged[i] = damaged[i]! ^ 0xff;
    for (const c of [damaged, cache.subarray(0, cache.length - 1000), cache.subarray(0, 128)]) {
      const script = compileBundle(BUNDLE, c);
      assert.equal(script.cachedDataRejected, undefined, 'no cache was given');
      assert.equal(typeof script.runInThisContext(), 'function');
    }
  });

  it('a cache that is a FIFO, a device or a directory is passed by (the CLI never hangs on it); a file is read', async () => {
    const fifo = path.join(dir, 'fifo.cache');
    await promisify(execFile)('mkfifo', [fifo]);
    const zero = path.join(dir, 'zero.cache');
    await symlink('/dev/zero', zero);
    for (const f of [fifo, zero, dir, path.join(dir, 'none')]) assert.equal(readCache(f), undefined, f);
    await writeFile(path.join(dir, 'file.cache'), 'abc');
    assert.equal(readCache(path.join(dir, 'file.cache'))?.toString(), 'abc');
  });

  it('V8 refusing a whole cache (made under other V8 flags) leaves the bundle compiled', async () => {
    // `acetate run` starts with its own flags (bin/acetate): V8 refuses the build's cache there.
    const code = `const e = require(${JSON.stringify(path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'entry.cjs'))});
      const s = e.compileBundle(${JSON.stringify(BUNDLE)}, require('fs').readFileSync(${JSON.stringify(`${BUNDLE}.cache`)}));
      process.stdout.write(String(s.cachedDataRejected) + ' ' + typeof s.runInThisContext());`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--max-semi-space-size=2', '--heap-growing-percent=20', '-e', code]);
    assert.equal(stdout, 'true function');
  });
});
