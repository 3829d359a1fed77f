import assert from 'node:assert/strict';
import { resolveRef, checkRefSyntax, shortHash } from '../../src/sources/git/refs.js';
import { normalizeSubpath, changedKeys, GitSource } from '../../src/sources/git/source.js';
import { maskCredentials } from '../../src/sources/git/git-cli.js';
import { GitSourceError } from '../../src/sources/git/driver.js';
import type { DesiredContainer } from '../../src/api/types.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const T = 'c'.repeat(40);

describe('Git source: refs, paths, changes', () => {
  const refs = new Map([
    ['HEAD', A],
    ['refs/heads/main', A],
    ['refs/heads/feature', B],
    ['refs/tags/v1', T], // annotated tags arrive peeled (git-cli lsRemote)
  ]);

  it('resolves HEAD, branches before tags, full ref names and full hashes', () => {
    assert.deepEqual(resolveRef(refs, undefined, 'u'), { fetch: 'HEAD', commit: A });
    assert.deepEqual(resolveRef(refs, 'feature', 'u'), { fetch: 'refs/heads/feature', commit: B });
    assert.deepEqual(resolveRef(refs, 'v1', 'u'), { fetch: 'refs/tags/v1', commit: T });
    assert.deepEqual(resolveRef(refs, 'refs/heads/main', 'u'), { fetch: 'refs/heads/main', commit: A });
    const d = 'd'.repeat(40);
    assert.deepEqual(resolveRef(refs, d, 'u'), { fetch: d, commit: d });
  });

  it('a ref that is gone (a deleted branch) or an abbreviated hash is a GitSourceError naming it', () => {
    assert.throws(
      () => resolveRef(refs, 'gone', 'file:///r'),
      (e: Error) => e instanceof GitSourceError && /ref 'gone' is not on file:\/\/\/r/.test(e.message),
    );
    assert.throws(() => resolveRef(refs, 'abcdef1', 'u'), /abbreviated commit hash cannot be fetched/);
    assert.throws(() => resolveRef(new Map(), undefined, 'u'), /no HEAD/);
  });

  it('refuses ref names git would take for options or ranges', () => {
    assert.match(checkRefSyntax('--upload-pack=x') ?? '', /not a valid Git ref name/);
    assert.match(checkRefSyntax('a..b') ?? '', /not a valid/);
    assert.equal(checkRefSyntax('release/1.2'), undefined);
    assert.equal(shortHash(A), 'aaaaaaa');
  });

  it('--path stays inside the repository', () => {
    assert.equal(normalizeSubpath(undefined), '');
    assert.equal(normalizeSubpath('./deploy/'), 'deploy');
    assert.equal(normalizeSubpath('a/../b'), 'b');
    assert.throws(() => normalizeSubpath('../etc'), /inside the repository/);
    assert.throws(() => normalizeSubpath('/etc'), /inside the repository/);
  });

  it('masks credentials in URLs', () => {
    assert.equal(maskCredentials('fatal: https://bob:s3cret@git.example/r.git not found'), 'fatal: https://***@git.example/r.git not found');
    assert.equal(maskCredentials('ssh://git@host/r'), 'ssh://***@host/r');
  });

  it('changedKeys: added, removed and respecified keys only', () => {
    const dc = (key: string, memory: number): DesiredContainer =>
      ({
        key,
        namespace: 'default',
        name: key,
        spec: { resources: { memoryBytes: memory } },
        source: { kind: 'file', file: 'f', line: 1 },
      }) as unknown as DesiredContainer;
    const before = new Map([
      ['a', dc('a', 1)],
      ['b', dc('b', 1)],
      ['c', dc('c', 1)],
    ]);
    const after = new Map([
      ['a', dc('a', 1)],
      ['b', dc('b', 2)],
      ['d', dc('d', 1)],
    ]);
    assert.deepEqual(changedKeys(before, after), ['b', 'c', 'd']);
  });

  it('before any commit is applied: nothing desired, incomplete with the reason, so nothing is destroyed', () => {
    const src = new GitSource({ url: 'file:///nonexistent/r.git', intervalMs: 60_000, cacheDir: '/nonexistent/acetate-git-cache' });
    const snap = src.snapshot();
    assert.equal(snap.complete, false);
    assert.equal(snap.incompleteReason, 'git:file:///nonexistent/r.git: no commit applied yet');
    assert.deepEqual([snap.containers.size, snap.protectedKeys.size, snap.problems.length, snap.failingOrigins.size, snap.files.length], [0, 0, 0, 0, 0]);
  });
});
