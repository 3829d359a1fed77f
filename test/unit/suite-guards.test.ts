/**
 * Guards against a test run that passes without testing anything: a skip nobody sees, a `.only`
 * left behind, a spec pattern that matches no file (mocha only warns about it when another
 * pattern matches). See test/support/prerequisites.ts for how a suite skips or fails instead.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

const TEST_DIR = path.join(PACKAGE_ROOT, 'test');
/** The one file allowed to call mocha's skip: it prints the reason first. */
const SKIP_HELPER = path.join('support', 'prerequisites.ts');
const SELF = path.join('unit', 'suite-guards.test.ts');

function sources(): string[] {
  return (readdirSync(TEST_DIR, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).sort();
}

/** Lines of test sources (outside the allowed files) matching re, as file:line: text. */
function offenders(re: RegExp, allowed: string[]): string[] {
  const found: string[] = [];
  for (const f of sources()) {
    if (allowed.includes(f)) continue;
    readFileSync(path.join(TEST_DIR, f), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (re.test(line)) found.push(`test/${f}:${i + 1}: ${line.trim()}`);
      });
  }
  return found;
}

/** A glob of a spec (dist/test/unit/**\/*.test.js) as a regular expression over relative paths. */
function globRegExp(glob: string): RegExp {
  const re = glob
    .split('**/')
    .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
    .join('(?:.*/)?');
  return new RegExp(`^${re}$`);
}

/** Every spec mocha is given: .mocharc.json's, and the dist/test/... patterns of package.json's scripts. */
function specPatterns(): string[] {
  const rc = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, '.mocharc.json'), 'utf8')) as { spec: string[] };
  const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const fromScripts = Object.values(pkg.scripts).flatMap((s) => [...s.matchAll(/'(dist\/test\/[^']+)'/g)].map((m) => m[1]!));
  return [...new Set([...rc.spec, ...fromScripts])];
}

describe('test suite guards', () => {
  it('no test skips without saying why: skips go through skipBecause (test/support/prerequisites.ts)', () => {
    const bare = offenders(/\bthis\.skip\(|\b(?:describe|context|it|specify)\.skip\b|\bx(?:describe|context|it|specify)\(/, [SKIP_HELPER, SELF]);
    assert.deepEqual(bare, [], 'use skipBecause(this, reason) for a truly optional prerequisite, requirePrerequisites for a required one');
  });

  it('no .only left in a test file (it would run that test alone)', () => {
    assert.deepEqual(offenders(/\b(?:describe|context|it|specify)\.only\(/, [SELF]), []);
  });

  it('every spec pattern matches built test files', () => {
    const built = (readdirSync(path.join(PACKAGE_ROOT, 'dist', 'test'), { recursive: true }) as string[]).map(
      (f) => `dist/test/${f.split(path.sep).join('/')}`,
    );
    const patterns = specPatterns();
    assert.ok(patterns.length >= 3, `spec patterns found: ${patterns.join(', ')}`);
    const empty = patterns.filter((p) => !built.some((f) => globRegExp(p).test(f)));
    assert.deepEqual(empty, [], 'these spec patterns match no file in dist/test (mocha would only warn)');
  });

  it('mocha fails a run with no test at all', () => {
    const rc = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, '.mocharc.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(rc['fail-zero'], true);
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    for (const [name, script] of Object.entries(pkg.scripts)) if (/\bmocha --no-config\b/.test(script)) assert.match(script, /--fail-zero/, `script ${name}`);
  });
});
