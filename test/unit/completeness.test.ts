/**
 * The one safety rule of the file source (judgeCompleteness): each branch on its own, then the
 * same directories read by `apply`/`plan` (loadManifestDir) and by `run` (FileSource) giving the
 * same verdict, the same message and the same failing files.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { judgeCompleteness, type ReadOutcome } from '../../src/sources/files/completeness.js';
import { loadManifestDir } from '../../src/sources/files/load.js';
import { FileSource } from '../../src/sources/files/watch.js';
import { withTmpDir, writeFiles } from '../support/tmpdir.js';
import { manifest } from '../support/manifest.js';

const ROOT = '/etc/acetate/manifests';

function judge(over: Partial<ReadOutcome>) {
  return judgeCompleteness({ root: ROOT, rootState: { kind: 'ok' }, files: [], containers: 0, allowEmpty: false, ...over });
}

describe('files: completeness (the safety rule)', () => {
  it('not read yet: incomplete, even with --allow-empty', () => {
    for (const allowEmpty of [false, true]) {
      const v = judge({ rootState: { kind: 'not-read' }, allowEmpty });
      assert.equal(v.complete, false);
      assert.equal(v.incompleteReason, `manifest directory ${ROOT} has not been read yet`);
    }
  });

  it('missing root: incomplete; complete with --allow-empty', () => {
    assert.deepEqual(judge({ rootState: { kind: 'missing' } }), {
      complete: false,
      incompleteReason: `manifest directory ${ROOT} is missing`,
      failingOrigins: new Set(),
    });
    assert.deepEqual(judge({ rootState: { kind: 'missing' }, allowEmpty: true }), { complete: true, failingOrigins: new Set() });
  });

  it('unreadable root: incomplete with the reason; complete with --allow-empty (and then no reason)', () => {
    const v = judge({ rootState: { kind: 'unreadable', detail: 'EACCES' } });
    assert.equal(v.complete, false);
    assert.equal(v.incompleteReason, `manifest directory ${ROOT} cannot be read: EACCES`);
    const allowed = judge({ rootState: { kind: 'unreadable', detail: 'EACCES' }, allowEmpty: true });
    assert.equal(allowed.complete, true);
    assert.equal(allowed.incompleteReason, undefined, 'no "nothing will be destroyed" warning when it will');
  });

  it('no manifest files: incomplete; complete with --allow-empty', () => {
    assert.equal(judge({}).incompleteReason, `no manifest files in ${ROOT}`);
    assert.equal(judge({ allowEmpty: true }).complete, true);
  });

  it('files but no valid container: incomplete, the failing files listed', () => {
    const files = [
      { file: `${ROOT}/a.yaml`, problems: [{ origin: `${ROOT}/a.yaml`, kind: 'invalid' as const, keys: [], message: 'YAML syntax error' }] },
      { file: `${ROOT}/b.yaml`, problems: [] },
    ];
    const v = judge({ files });
    assert.equal(v.complete, false);
    assert.equal(v.incompleteReason, `no valid manifest in ${ROOT}`);
    assert.deepEqual([...v.failingOrigins], [`${ROOT}/a.yaml`]);
    assert.equal(judge({ files, allowEmpty: true }).complete, true);
  });

  it('at least one valid container: complete, failing files still listed', () => {
    const files = [{ file: `${ROOT}/a.yaml`, problems: [{ origin: `${ROOT}/a.yaml`, kind: 'invalid' as const, keys: ['default/x'], message: 'bad' }] }];
    assert.deepEqual(judge({ files, containers: 1 }), { complete: true, failingOrigins: new Set([`${ROOT}/a.yaml`]) });
  });

  describe('apply/plan and run give the same verdict for the same directory', () => {
    const cases: { what: string; files?: Record<string, string>; missing?: boolean; allowEmpty?: boolean; complete: boolean; reason?: RegExp }[] = [
      { what: 'a missing directory', missing: true, complete: false, reason: /^manifest directory .* is missing$/ },
      { what: 'a missing directory, --allow-empty', missing: true, allowEmpty: true, complete: true },
      { what: 'an empty directory', files: {}, complete: false, reason: /^no manifest files in / },
      { what: 'an empty directory, --allow-empty', files: {}, allowEmpty: true, complete: true },
      { what: 'only other files', files: { 'README.md': '# hi' }, complete: false, reason: /^no manifest files in / },
      { what: 'only a YAML syntax error', files: { 'bad.yaml': 'kind: [' }, complete: false, reason: /^no valid manifest in / },
      { what: 'only a conflict', files: { 'a.yaml': manifest('web'), 'b.yaml': manifest('web') }, complete: false, reason: /^no valid manifest in / },
      { what: 'a valid and an invalid file', files: { 'ok.yaml': manifest('ok'), 'bad.yaml': manifest('bad', { memory: '12 GB' }) }, complete: true },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        await withTmpDir(async (tmp) => {
          const dir = path.join(tmp, 'manifests');
          if (!c.missing) await writeFiles(dir, { ...c.files, '.keep': '' });
          const applied = await loadManifestDir(dir, { allowEmpty: c.allowEmpty });
          const source = new FileSource({ dir, allowEmpty: c.allowEmpty, relistMs: 0 });
          await source.start(() => undefined);
          try {
            const run = source.snapshot();
            assert.equal(applied.complete, c.complete, 'apply');
            assert.equal(run.complete, c.complete, 'run');
            assert.equal(run.incompleteReason, applied.incompleteReason, 'the same message');
            if (c.reason) assert.match(applied.incompleteReason ?? '', c.reason);
            else assert.equal(applied.incompleteReason, undefined);
            assert.deepEqual([...run.failingOrigins].sort(), [...applied.failingOrigins].sort(), 'the same failing files');
          } finally {
            await source.stop();
          }
        });
      });
    }
  });
});
