/**
 * acetate's package root: the nearest directory above this module whose package.json names
 * acetate. Found by walking up rather than by a fixed number of `..`, because the same module
 * runs from two layouts: tsc's output (dist/src/util/, what the tests import) and the CLI's
 * bundle (dist/cli/, what bin/acetate loads; scripts/bundle.mjs).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === 'acetate') return dir;
    } catch {
      // no package.json here, or one that is not ours (or not JSON): look further up
    }
    if (path.dirname(dir) === dir) {
      throw new Error(
        `acetate's package.json (name "acetate") was not found in ${from} or above: package.json, crds/ and dist/ must stay together as \`npm run build\` left them`,
      );
    }
  }
}

export const PACKAGE_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** Where `npm run build` puts tsc's output of src/ (the precompiled validator lives there too). */
export const DIST_SRC = path.join(PACKAGE_ROOT, 'dist', 'src');
