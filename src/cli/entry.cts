/**
 * The CLI's entry (dist/cli/main.js; scripts/bundle.mjs puts it there): runs the bundle
 * (dist/cli/bundle.js) with the V8 code cache the build made of it (bundle.js.cache), as Node's
 * CommonJS loader would run it without one.
 *
 * Why: every command starts by compiling the 1 MB bundle; with the cache V8 reads the compiled
 * top-level code instead of parsing the whole file (~15 ms of CPU of each `plan` and `get`; Node
 * 22's module.enableCompileCache does this, Node 20 has none). The cache is used only for the very
 * text it was made of, and only whole: the SHA-256 of that text and of V8's data head the file
 * (V8's own checks compare the text's length only, and a release build of V8 does not checksum
 * the data: damaged data crashes it; the hash is no defence against whoever may write dist/, who
 * may as well write the bundle). V8 may still refuse it (another Node, other V8 flags: `run`
 * starts with its own); the bundle is then compiled as usual. Only the build writes it, beside the
 * bundle: nothing does at run time.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

/** The cache file: the text's SHA-256 and the data's (hex, this many bytes each), then V8's data. */
const HASH_CHARS = 64;

/** The bundle wrapped as a CommonJS module's function (Module.wrap), with the cache when it is whole and of this text. */
export function compileBundle(file: string, cache?: Buffer): vm.Script {
  const source = readFileSync(file, 'utf8');
  const data = cache?.subarray(2 * HASH_CHARS);
  const whole =
    !!data?.length && cache!.toString('latin1', 0, HASH_CHARS) === sha256(source) && cache!.toString('latin1', HASH_CHARS, 2 * HASH_CHARS) === sha256(data);
  const cachedData = whole ? data : undefined;
  // Its `#!` line (src/cli/main.ts's) would not parse inside the wrapper: emptied, the lines kept.
  return new vm.Script(Module.wrap(source.replace(/^#!.*/, '')), {
    filename: file,
    // import() as in any module of the main context (the bundle has none today).
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    ...(cachedData ? { cachedData } : {}),
  });
}

/** What the build writes to `<file>.cache`. */
export function codeCacheOf(file: string): Buffer {
  const data = compileBundle(file).createCachedData();
  return Buffer.concat([Buffer.from(sha256(readFileSync(file, 'utf8')) + sha256(data), 'latin1'), data]);
}

/** The cache's bytes when it is a regular file of a sane size; undefined otherwise (compiled as usual): a FIFO or a device there never hangs the CLI. */
export function readCache(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    return st.isFile() && st.size <= MAX_CACHE_BYTES ? readFileSync(fd) : undefined;
  } catch {
    return undefined; // none
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Far above the build's (~230 KB for a 1 MB bundle). */
const MAX_CACHE_BYTES = 64 * 2 ** 20;

function sha256(what: string | Buffer): string {
  return createHash('sha256').update(what).digest('hex');
}

function run(): void {
  const bundle = path.join(__dirname, 'bundle.js');
  // Node maps stack traces (--enable-source-maps) only of what its own loader compiled: then the
  // bundle is loaded as usual, so errors name the .ts files and lines again.
  if (process.sourceMapsEnabled) {
    Module.createRequire(__filename)(bundle);
    return;
  }
  const fn = compileBundle(bundle, readCache(`${bundle}.cache`)).runInThisContext() as (...args: unknown[]) => void;
  // The bundle as a module of its own, its require() resolving from dist/cli as the main module's
  // would. Unlike a required one it is not in require.cache, and require.main is this entry: the
  // bundle uses neither (it must not run itself by comparing process.argv[1]: scripts/bundle.mjs).
  const mod = new Module(bundle);
  mod.filename = bundle;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(__dirname);
  fn.call(mod.exports, mod.exports, Module.createRequire(bundle), mod, bundle, __dirname);
}

if (require.main === module) run();
