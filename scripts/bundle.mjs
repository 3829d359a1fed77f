// Bundles the CLI (tsc's output under dist/src) into one file, dist/cli/bundle.js, which bin/acetate
// loads through dist/cli/main.js (src/cli/entry.cts: with the V8 code cache made here at the end).
//
// Why one CommonJS file: Node 20's ESM loader resolves, links and compiles each module a command
// loads one by one. With ~150 modules that was 0.15 of the 0.29 s of CPU `acetate --version`
// took; split into ESM chunks (one per command's lazy imports) it was still ~70 chunks for a
// `plan` (7 Dec, beside `acetate run` at 2,500 containers: a no-op plan's median 0.35-0.39 s as
// chunks, 0.29-0.31 s as this one file; docs/benchmarks.md). CommonJS loads the file once; esbuild keeps each module's body behind a lazy
// init, so a command runs only the code it imports, as the chunks did. Dependencies stay in
// node_modules: the bundle is acetate's own code, and tsc stays the type checker. An ESM-only one
// imported by name (@kubernetes/client-node) is loaded by require(esm), which Node has without a
// flag since 20.19 (package.json's engines); one imported for its default export (p-limit) is
// bundled instead, because require(esm) gives its namespace, whose `default` esbuild's CommonJS
// interop would not unwrap.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { createRequire } from 'node:module';

const BUNDLED = ['p-limit'];
const dependencies = Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).dependencies ?? {});
const external = dependencies.filter((d) => !BUNDLED.includes(d)).flatMap((d) => [d, `${d}/*`]);

rmSync('dist/cli', { recursive: true, force: true }); // nothing of an earlier build left beside the new one
mkdirSync('dist/cli', { recursive: true });
// The package is "type": "module": this tells Node that dist/cli/*.js are CommonJS.
writeFileSync('dist/cli/package.json', '{ "type": "commonjs" }\n');
const result = await build({
  entryPoints: ['dist/src/cli/main.js'],
  metafile: true,
  outfile: 'dist/cli/bundle.js',
  bundle: true,
  splitting: false,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external,
  // The sources are ES modules (strict, import.meta.url): the bundle keeps both.
  banner: { js: '"use strict";\nconst __acetate_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  // Maps without the sources' text (dist/src holds them): stack traces and profiles can name the
  // .ts file and line (node --enable-source-maps; bench/lib/profile.ts), at a third of the size.
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  define: {
    'import.meta.url': '__acetate_import_meta_url',
    // This build's identity (src/util/build-stamp.ts): a new one at every bundle, whatever the
    // files' times and sizes (a rebuild in place, or one with normalized times, is still another build).
    __ACETATE_BUILD_ID__: JSON.stringify(randomUUID()),
  },
});

// In one file every module's import.meta.url is the bundle's, which is process.argv[1] when the
// bundle is loaded by name (it was the entry until 8 Dec): a module that runs itself when it is the
// main one (validator-build.ts: `process.argv[1] === fileURLToPath(import.meta.url)`) would run in
// every command. None may be in the bundle.
const selfRunning = Object.keys(result.metafile.inputs).filter((f) => f.startsWith('dist/src/') && readFileSync(f, 'utf8').includes('process.argv[1]'));
if (selfRunning.length) {
  rmSync('dist/cli', { recursive: true, force: true });
  throw new Error(`the CLI bundle must not contain ${selfRunning.join(', ')}: it compares process.argv[1] with its own module`);
}

// The entry bin/acetate runs (src/cli/entry.cts) and the V8 code cache it runs the bundle with.
const require = createRequire(import.meta.url);
const entry = readFileSync('dist/src/cli/entry.cjs', 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'); // its map stays in dist/src
writeFileSync('dist/cli/main.js', `#!/usr/bin/env node\n${entry}`, { mode: 0o755 });
writeFileSync('dist/cli/bundle.js.cache', require('../dist/src/cli/entry.cjs').codeCacheOf('dist/cli/bundle.js'));
