/**
 * What a container's upper dir holds of the host view once its markers are a shared layer
 * (host-view.ts with host-layer.ts), on real files: a container made before the layers gets its
 * copied markers taken out at its next start (the layer holds them), keeping what it wrote over
 * one; what the layer lacks (node data made after it) is placed in the upper dir; the watcher
 * places nothing beside a container whose layer is gone (a reboot: it is not running over it).
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { applyHostView, type ApplyTarget } from '../../src/runtime/walls/host-view.js';
import { TARGET_FILE, type HostLayer } from '../../src/runtime/walls/host-layer.js';
import type { HostView, ViewEntry } from '../../src/runtime/walls/host-masks.js';

const absent = (p: string): ViewEntry => ({ path: p, action: { kind: 'absent' }, why: 'test', source: 'default' }) as unknown as ViewEntry;
const exists = (p: string) => lstatSync(p, { throwIfNoEntry: false }) !== undefined;

describe('host view: the upper dir holds what the layer lacks (host-view.ts, host-layer.ts)', () => {
  let root: string;
  let t: ApplyTarget;
  const view: HostView = { entries: [absent('/var/lib/old'), absent('/var/lib/new')], shown: [], tmpfs: [] };
  const layer = (): HostLayer => ({
    name: 'layer-0123456789abcdef',
    dir: path.join(root, 'layers', 'layer-0123456789abcdef'),
    placed: new Map([['/var/lib/old', { kind: 'absent' }]]),
  });
  const record = () => JSON.parse(readFileSync(path.join(t.containerDir, 'host-view.json'), 'utf8')) as Record<string, unknown>;

  beforeEach(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'acetate-view-layer-'));
    const hostRoot = path.join(root, 'host');
    mkdirSync(path.join(hostRoot, 'var', 'lib', 'old'), { recursive: true });
    const upper = path.join(root, 'upper');
    mkdirSync(path.join(upper, 'var', 'lib'), { recursive: true });
    const containerDir = path.join(root, 'container');
    mkdirSync(containerDir);
    t = { hostRoot, stateDir: root, containerDir, upper, idBase: 0 };
    // A container of the earlier layout: /var/lib/old's whiteout copied into its upper dir.
    await exec('mknod', [path.join(upper, 'var', 'lib', 'old'), 'c', '0', '0']);
    writeFileSync(path.join(containerDir, 'host-view.json'), JSON.stringify({ '/var/lib/old': { kind: 'absent' } }));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("at a start over a layer: the layer's markers leave the upper dir, what it lacks is placed there, and the record names the layer", async () => {
    await applyHostView(view, t, { recheck: true, layer: layer() });
    assert.equal(exists(path.join(t.upper, 'var', 'lib', 'old')), false, 'the copied whiteout is taken out: the layer holds it');
    assert.ok(lstatSync(path.join(t.upper, 'var', 'lib', 'new')).isCharacterDevice(), 'what the layer lacks is in the upper dir');
    assert.deepEqual(Object.keys(record()), ['/var/lib/new']);
    assert.equal(JSON.parse(readFileSync(path.join(t.containerDir, TARGET_FILE), 'utf8')).layer, 'layer-0123456789abcdef');
  });

  it('what the container made over a copied marker stays its own', async () => {
    rmSync(path.join(t.upper, 'var', 'lib', 'old'));
    mkdirSync(path.join(t.upper, 'var', 'lib', 'old'));
    writeFileSync(path.join(t.upper, 'var', 'lib', 'old', 'mine'), 'tenant data\n');
    await applyHostView(view, t, { recheck: true, layer: layer() });
    assert.equal(readFileSync(path.join(t.upper, 'var', 'lib', 'old', 'mine'), 'utf8'), 'tenant data\n');
  });

  it('the watcher beside a container whose record names a layer that is gone places nothing; one that is there gets what it lacks', async () => {
    writeFileSync(path.join(t.containerDir, TARGET_FILE), JSON.stringify({ upper: t.upper, idBase: 0, layer: 'layer-0123456789abcdef' }));
    const layersDir = path.join(root, 'layers');
    assert.equal(await applyHostView(view, t, { recheck: false, layersDir }), 0);
    assert.equal(exists(path.join(t.upper, 'var', 'lib', 'new')), false);
    // The layer made (its record beside its dir): the new entry is placed, the old marker's layer copy counts.
    mkdirSync(layer().dir, { recursive: true });
    writeFileSync(`${layer().dir}.json`, JSON.stringify({ '/var/lib/old': { kind: 'absent' } }));
    assert.ok((await applyHostView(view, t, { recheck: false, layersDir })) > 0);
    assert.ok(lstatSync(path.join(t.upper, 'var', 'lib', 'new')).isCharacterDevice());
    assert.equal(
      JSON.parse(readFileSync(path.join(t.containerDir, TARGET_FILE), 'utf8')).layer,
      'layer-0123456789abcdef',
      'the watcher never changes the layer named',
    );
  });
});
