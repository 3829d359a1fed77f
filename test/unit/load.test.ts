import assert from 'node:assert/strict';
import path from 'node:path';
import { symlink, mkdir } from 'node:fs/promises';
import { loadManifestDir, loadManifestFile } from '../../src/sources/files/load.js';
import { isManifestPath } from '../../src/sources/files/ignore.js';
import { withTmpDir, writeFiles } from '../support/tmpdir.js';

const web = (name = 'web', extra = '') => `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: host
  command: ["/bin/sleep", "1000"]
  resources:
    cpu: 500m
    memory: 256Mi${extra}
`;

describe('manifest files', () => {
  it('names file, line and field of a bad value', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, { 'web.yaml': web().replace('256Mi', '12 GB') });
      const r = await loadManifestFile(path.join(dir, 'web.yaml'));
      assert.equal(r.problems.length, 1);
      const p = r.problems[0]!;
      assert.equal(p.line, 10);
      assert.equal(p.field, 'spec.resources.memory');
      assert.equal(p.message, "'12 GB' is not a quantity such as 512Mi");
      assert.deepEqual(p.keys, ['default/web']);
    });
  });

  it('reads multi-document YAML and JSON, with lines per document', async () => {
    await withTmpDir(async (dir) => {
      const json = JSON.stringify({
        apiVersion: 'acetate.dev/v1alpha1',
        kind: 'Container',
        metadata: { name: 'j' },
        spec: { template: 'host', command: ['/bin/true'] },
      });
      await writeFiles(dir, { 'multi.yml': `${web('a')}---\n${web('b').replace('500m', 'x')}---\n`, 'j.json': json });
      const snap = await loadManifestDir(dir);
      assert.deepEqual([...snap.containers.keys()].sort(), ['default/a', 'default/j']);
      const p = snap.problems[0]!;
      assert.equal(p.field, 'spec.resources.cpu');
      assert.equal(p.line, 20);
      assert.ok(snap.failingOrigins.has(path.join(dir, 'multi.yml')));
      assert.ok(snap.protectedKeys.has('default/b'));
    });
  });

  it('reports YAML syntax errors with their line and protects nothing by name', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, { 'bad.yaml': 'apiVersion: x\nkind: [\n', 'ok.yaml': web() });
      const snap = await loadManifestDir(dir);
      assert.equal(snap.problems.length, 1);
      assert.match(snap.problems[0]!.message, /YAML syntax error/);
      assert.ok(snap.problems[0]!.line! >= 2);
      assert.ok(snap.failingOrigins.has(path.join(dir, 'bad.yaml')));
      assert.equal(snap.complete, true);
    });
  });

  it('ignores dotfiles, .git, editor and backup files, and other extensions', async () => {
    assert.equal(isManifestPath('/m/web.yaml'), true);
    for (const p of ['/m/.web.yaml', '/m/web.yaml~', '/m/web.yaml.bak', '/m/.web.yaml.swp', '/m/#web.yaml#', '/m/web.txt', '/m/x.yaml.swx'])
      assert.equal(isManifestPath(p), false, p);
    await withTmpDir(async (dir) => {
      await writeFiles(dir, { 'web.yaml': web(), '.git/x.yaml': web('git'), 'web.yaml.bak': web('bak'), 'sub/deep.yaml': web('deep'), 'README.md': '# hi' });
      const snap = await loadManifestDir(dir);
      assert.deepEqual([...snap.containers.keys()].sort(), ['default/deep', 'default/web']);
      assert.deepEqual(snap.problems, []);
    });
  });

  it('reports the same name in two files as a conflict and protects it', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, { 'a.yaml': web(), 'b.yaml': web() });
      const snap = await loadManifestDir(dir);
      assert.equal(snap.containers.size, 0);
      assert.ok(snap.protectedKeys.has('default/web'));
      assert.equal(snap.problems[0]!.kind, 'conflict');
      assert.match(snap.problems[0]!.message, /declared 2 times/);
    });
  });

  it('is incomplete (destroys nothing) when the directory is missing or has no valid manifest, unless allowEmpty', async () => {
    await withTmpDir(async (dir) => {
      const missing = await loadManifestDir(path.join(dir, 'nope'));
      assert.equal(missing.complete, false);
      assert.match(missing.incompleteReason!, /manifest directory .*nope is missing/);
      assert.equal((await loadManifestDir(dir)).complete, false);
      assert.equal((await loadManifestDir(dir, { allowEmpty: true })).complete, true);
      await writeFiles(dir, { 'bad.yaml': 'kind: [' });
      assert.equal((await loadManifestDir(dir)).complete, false);
    });
  });

  it('survives symlink loops, binary and huge files', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, { 'ok.yaml': web(), 'bin.yaml': Buffer.from([0x61, 0, 0x62]), 'huge.yaml': 'a: ' + 'x'.repeat(1024 * 1024 + 10) });
      await mkdir(path.join(dir, 'loop'));
      await symlink(dir, path.join(dir, 'loop', 'back'));
      const snap = await loadManifestDir(dir);
      assert.deepEqual([...snap.containers.keys()], ['default/web']);
      const msgs = snap.problems.map((p) => p.message).join('\n');
      assert.match(msgs, /binary file/);
      assert.match(msgs, /larger than/);
      assert.match(msgs, /symlink loop/);
    });
  });

  it('skips manifests for another node and documents of other APIs', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, {
        'a.yaml': web('here') + '  nodeName: node-a\n',
        'b.yaml': web('there') + '  nodeName: node-b\n',
        'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n',
      });
      const snap = await loadManifestDir(dir, { nodeName: 'node-a' });
      assert.deepEqual([...snap.containers.keys()], ['default/here']);
      assert.deepEqual(snap.problems, []);
    });
  });
});
