/**
 * The host view's shared layer (host-layer.ts), on its real tmpfs: what it holds, that a layer a
 * container's record names is never pruned, that one no record names is, and that the tmpfs goes
 * with the instance's last container.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { isMounted, mountsUnder, unmountAll } from '../../src/util/mounts.js';
import { layerFor, layersDirOf, pruneLayers, releaseLayersMount, TARGET_FILE } from '../../src/runtime/walls/host-layer.js';
import type { HostView, ViewEntry } from '../../src/runtime/walls/host-masks.js';
import type { Placed } from '../../src/runtime/walls/host-markers.js';

describe('host view layer: one shared read-only layer of markers on a tmpfs of its own (host-layer.ts)', function () {
  this.timeout(60_000);
  let root: string;
  let base: string;
  let containers: string;
  const view = (paths: string[]): { view: HostView; placed: Map<string, Placed> } => {
    const entries = paths.map((p) => ({ path: p, action: { kind: p.endsWith('-empty') ? 'empty' : 'absent' }, why: 'node data', source: 'default' }));
    return {
      view: { entries: entries as unknown as ViewEntry[], shown: [], tmpfs: [] },
      placed: new Map(paths.map((p) => [p, { kind: p.endsWith('-empty') ? 'empty' : 'absent' }])),
    };
  };
  const target = () => ({
    hostRoot: path.join(root, 'host'),
    stateDir: path.join(root, 'state'),
    containerDir: path.join(containers, 'x'),
    upper: '/nonexistent',
    idBase: 0,
  });

  beforeEach(async () => {
    root = await mkdtemp('/tmp/acetate-host-layer-');
    base = path.join(root, 'run', 'host-layers');
    containers = path.join(root, 'state', 'containers');
    await mkdir(path.join(root, 'host', 'var', 'lib', 'svc-empty'), { recursive: true });
    await mkdir(containers, { recursive: true });
  });
  afterEach(async () => {
    for (const m of await mountsUnder(root)) await unmountAll(m).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });

  it('holds a whiteout and an opaque dir on its own tmpfs, and one build serves every start of a view', async () => {
    const v = view(['/var/lib/svc', '/var/lib/svc-empty']);
    const [a, b] = await Promise.all([layerFor(v.view, v.placed, target(), base), layerFor(v.view, v.placed, target(), base)]);
    assert.equal(a.layer.dir, b.layer.dir);
    // One build: one layer and its record, no second copy made and dropped.
    assert.deepEqual((await readdir(base)).sort(), [a.layer.name, `${a.layer.name}.json`]);
    assert.ok(await isMounted(base), 'a tmpfs of its own (overlayfs refuses a layer inside another)');
    const st = await lstat(path.join(a.layer.dir, 'var', 'lib', 'svc'));
    assert.ok(st.isCharacterDevice() && st.rdev === 0, 'a whiteout');
    const x = await exec('getfattr', ['--absolute-names', '-n', 'user.overlay.opaque', '--only-values', path.join(a.layer.dir, 'var', 'lib', 'svc-empty')]);
    assert.equal(x.stdout, 'y');
    assert.deepEqual([...a.layer.placed.keys()].sort(), ['/var/lib/svc', '/var/lib/svc-empty']);
    a.release();
    b.release();
  });

  it("a layer a container's record names is kept when the view changes; one nobody names nor holds is removed", async () => {
    const v1 = view(['/var/lib/one']);
    const named = await layerFor(v1.view, v1.placed, target(), base);
    await mkdir(path.join(containers, 'default_a'));
    await writeFile(path.join(containers, 'default_a', TARGET_FILE), JSON.stringify({ upper: '/u', idBase: 0, layer: named.layer.name }));
    named.release();
    const v2 = view(['/var/lib/two']);
    const held = await layerFor(v2.view, v2.placed, target(), base);
    const v3 = view(['/var/lib/three']);
    const third = await layerFor(v3.view, v3.placed, target(), base);
    third.release();
    // v2's layer: held by a start (not released yet), named by nobody: kept.
    await pruneLayers(base, containers, third.layer.dir);
    assert.ok(await lstat(named.layer.dir).catch(() => undefined), 'named by a record: kept');
    assert.ok(await lstat(held.layer.dir).catch(() => undefined), 'held by a start: kept');
    held.release();
    await pruneLayers(base, containers, third.layer.dir);
    await assert.rejects(lstat(held.layer.dir), { code: 'ENOENT' });
    assert.deepEqual((await readdir(base)).sort(), [named.layer.name, `${named.layer.name}.json`, third.layer.name, `${third.layer.name}.json`].sort());
  });

  it("two instances given one run dir each have their own layers' tmpfs: one's prune and last removal leave the other's layer", async () => {
    const run = path.join(root, 'run');
    const other = { state: path.join(root, 'state-b'), containers: path.join(root, 'state-b', 'containers') };
    await mkdir(other.containers, { recursive: true });
    const baseA = layersDirOf(run, path.join(root, 'state'));
    const baseB = layersDirOf(run, other.state);
    assert.notEqual(baseA, baseB);
    const v1 = view(['/var/lib/one']);
    const a = await layerFor(v1.view, v1.placed, target(), baseA);
    await mkdir(path.join(containers, 'default_a'));
    await writeFile(path.join(containers, 'default_a', TARGET_FILE), JSON.stringify({ upper: '/u', idBase: 0, layer: a.layer.name }));
    a.release();
    const v2 = view(['/var/lib/two']);
    const b = await layerFor(v2.view, v2.placed, { ...target(), stateDir: other.state }, baseB);
    b.release();
    await pruneLayers(baseB, other.containers, b.layer.dir);
    await releaseLayersMount(baseB, other.containers); // B has no container left
    assert.equal(await isMounted(baseB), false);
    assert.ok(await isMounted(baseA), "A's tmpfs stays");
    assert.ok((await lstat(a.layer.dir)).isDirectory(), "A's layer stays");
    await rm(path.join(containers, 'default_a'), { recursive: true });
    await releaseLayersMount(baseA, containers);
    assert.equal(await isMounted(baseA), false);
    // A state dir renamed (its containers running on) and a new one made at its path: two dirs.
    await rename(other.state, `${other.state}.old`);
    await mkdir(other.state);
    assert.equal(layersDirOf(run, `${other.state}.old`), baseB);
    assert.notEqual(layersDirOf(run, other.state), baseB);
  });

  it('the tmpfs stays while the instance has a container, and goes with its last', async () => {
    const v = view(['/var/lib/svc']);
    const l = await layerFor(v.view, v.placed, target(), base);
    l.release();
    await mkdir(path.join(containers, 'default_a'));
    await releaseLayersMount(base, containers);
    assert.ok(await isMounted(base));
    await rm(path.join(containers, 'default_a'), { recursive: true });
    await releaseLayersMount(base, containers);
    assert.equal(await isMounted(base), false);
    await assert.rejects(lstat(base), { code: 'ENOENT' });
    // The next start makes it again.
    const again = await layerFor(v.view, v.placed, target(), base);
    assert.ok((await lstat(again.layer.dir)).isDirectory());
    again.release();
  });
});
