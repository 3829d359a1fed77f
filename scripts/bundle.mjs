// Bundles the CLI (tsc's output under dist/src) into dist/cli/, which bin/acetate loads.
//
// Why: Node 20's ESM loader resolves, reads and compiles each of the ~150 modules a command
// loads one by one; that was 0.15 of the 0.29 s of CPU `acetate --version` took, and every
// `get`, `plan` and `exec` pays it. One file per command (esbuild's code splitting keeps the
// commands' lazy imports lazy) saves ~0.1 s per call. Dependencies stay in node_modules
// (--packages=external): the bundle is acetate's own code only, and tsc stays the type checker.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/cli', { recursive: true, force: true }); // no chunk of an earlier build left beside the new ones
await build({
  entryPoints: ['dist/src/cli/main.js'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  // Maps without the sources' text (dist/src holds them): stack traces and profiles can name the
  // .ts file and line (node --enable-source-maps; bench/lib/profile.ts), at a third of the size.
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  // This build's identity (src/util/build-stamp.ts): a new one at every bundle, whatever the
  // files' times and sizes (a rebuild in place, or one with normalized times, is still another build).
  define: { __ACETATE_BUILD_ID__: JSON.stringify(randomUUID()) },
});
