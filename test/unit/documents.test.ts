/** kind: List, documents acetate does not understand, FIFOs, CPU quantities and node capacity, capped error output (issue 10). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { loadManifestDir, loadManifestFile } from '../../src/sources/files/load.js';
import { validateManifest } from '../../src/api/validate.js';
import { parseCpu } from '../../src/api/quantity.js';
import { cappedLines, MAX_LINES_PER_FILE } from '../../src/cli/problems.js';
import type { SourceProblem } from '../../src/contracts/source.js';
import { withTmpDir, writeFiles } from '../support/tmpdir.js';

const item = (name: string, extra = '') => `- apiVersion: acetate.dev/v1alpha1
  kind: Container
  metadata:
    name: ${name}
  spec:
    template: host
    command: ["/bin/sleep", "1000"]${extra}
`;

describe('documents: List, other kinds, FIFOs, capacity', () => {
  it('reads the items of a kind: List (and ContainerList) as Containers, with file:line:field errors inside items', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, {
        'list.yaml': `apiVersion: v1\nkind: List\nitems:\n${item('a')}${item('b', '\n    resources:\n      memory: 12 GB')}`,
        'clist.yaml': `apiVersion: acetate.dev/v1alpha1\nkind: ContainerList\nmetadata: {}\nitems:\n${item('c')}`,
      });
      const snap = await loadManifestDir(dir);
      assert.deepEqual([...snap.containers.keys()].sort(), ['default/a', 'default/c']);
      assert.equal(snap.problems.length, 1);
      const p = snap.problems[0]!;
      assert.equal(p.origin, path.join(dir, 'list.yaml'));
      assert.equal(p.line, 19);
      assert.equal(p.field, 'items[1].spec.resources.memory');
      assert.deepEqual(p.keys, ['default/b'], 'the invalid item protects its container');
      assert.equal(snap.containers.get('default/a')!.source.kind === 'file' && (snap.containers.get('default/a')!.source as { line: number }).line, 7);
    });
  });

  it('reports documents of other kinds as warnings, a Container of another apiVersion as an error, a List without items as an error', async () => {
    await withTmpDir(async (dir) => {
      await writeFiles(dir, {
        'mixed.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\napiVersion: v1\nkind: Container\nmetadata:\n  name: web\n---\napiVersion: v1\nkind: List\n`,
        'list.yaml': `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm\n${item('ok')}`,
      });
      const snap = await loadManifestDir(dir);
      assert.deepEqual([...snap.containers.keys()], ['default/ok']);
      assert.deepEqual(
        snap.warnings.map((w) => [path.basename(w.origin), w.line, w.field, w.message]),
        [
          ['list.yaml', 4, 'items[0]', "v1 ConfigMap 'cm' is not a Container (acetate.dev/v1alpha1): skipped"],
          ['mixed.yaml', 1, undefined, "apps/v1 Deployment 'd' is not a Container (acetate.dev/v1alpha1): skipped"],
        ],
      );
      const errors = snap.problems.map((p) => [p.line, p.field, p.keys]);
      assert.deepEqual(errors, [
        [6, 'apiVersion', ['default/web']],
        [11, 'items', []],
      ]);
      assert.ok(snap.failingOrigins.has(path.join(dir, 'mixed.yaml')));
    });
  });

  it('skips a FIFO with a warning instead of waiting for a writer', async () => {
    await withTmpDir(async (dir) => {
      const fifo = path.join(dir, 'pipe.yaml');
      execFileSync('mkfifo', [fifo]);
      const r = await loadManifestFile(fifo);
      assert.deepEqual(r.problems, []);
      assert.equal(r.warnings[0]?.message, 'a FIFO, not a regular file: skipped');
      const snap = await loadManifestDir(fifo);
      assert.equal(snap.warnings.length, 1);
    });
  });

  it('reads cpu: 1e3 (a YAML number) and "1e3" (a string) the same, and refuses both beyond the node', async () => {
    const doc = (cpu: string | number) => ({
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'x' },
      spec: { template: 'host', command: ['/bin/true'], resources: { cpu } },
    });
    for (const cpu of [1e3, '1e3', '1k', '0.5', '5e-1', '500m']) assert.equal(validateManifest(doc(cpu)).ok, true, String(cpu));
    assert.equal(parseCpu('1e3'), parseCpu(1e3));
    assert.equal(parseCpu('5e-1'), 500);
    assert.equal(parseCpu('1.1e-1'), 110);
    assert.equal(validateManifest(doc('1e-3')).ok, false, 'below 10m');
    assert.equal(validateManifest(doc('1 e3')).ok, false);
    await withTmpDir(async (dir) => {
      const yaml = (name: string, cpu: string) =>
        `apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata:\n  name: ${name}\nspec:\n  template: host\n  command: ["/bin/true"]\n  resources:\n    cpu: ${cpu}\n`;
      await writeFiles(dir, { 'n.yaml': yaml('n', '1e3'), 's.yaml': yaml('s', '"1e3"'), 'ok.yaml': yaml('ok', '1') });
      const snap = await loadManifestDir(dir, { capacity: { cpuMillis: 2000 } });
      assert.deepEqual([...snap.containers.keys()], ['default/ok']);
      assert.deepEqual(
        snap.problems.map((p) => [path.basename(p.origin), p.line, p.field, p.message]),
        [
          ['n.yaml', 9, 'spec.resources.cpu', 'cpu 1000 is more than this node has (2): the node cannot satisfy it'],
          ['s.yaml', 9, 'spec.resources.cpu', 'cpu 1000 is more than this node has (2): the node cannot satisfy it'],
        ],
      );
    });
  });

  it('refuses a mount inside /proc', () => {
    const r = validateManifest({
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'x' },
      spec: { template: 'host', command: ['/bin/true'], mounts: [{ hostPath: '/tmp', containerPath: '/proc' }] },
    });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.issues[0]!.field, 'spec.mounts[0].containerPath');
  });

  it(`prints at most ${MAX_LINES_PER_FILE} errors per file, then how many more`, () => {
    const many: SourceProblem[] = Array.from({ length: 10_000 }, (_, i) => ({ origin: 'big.yaml', line: i + 1, kind: 'invalid', keys: [], message: 'bad' }));
    const lines = cappedLines([...many, { origin: 'small.yaml', line: 1, kind: 'invalid', keys: [], message: 'bad' }]);
    assert.equal(lines.length, MAX_LINES_PER_FILE + 2);
    assert.equal(lines.at(-1), `big.yaml: ... and ${10_000 - MAX_LINES_PER_FILE} more (10000 in all; fix the first ones and run again)`);
    assert.ok(lines.includes('small.yaml:1: bad'));
  });
});
