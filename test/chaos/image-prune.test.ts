/**
 * `acetate image prune --all` in a loop beside `acetate run` creating containers from an image it
 * pulls on demand (the images lock, src/images/images-lock.ts): no prune is refused or fails, no
 * create or start fails because a prune removed the image or its layers under it, every container
 * ends Running with no restart, and the image is whole at the end. Checked from the host, not from
 * run's word alone. Size: ACETATE_CHAOS_PRUNE_CONTAINERS (24).
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImageStore } from '../../src/images/store.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { imageManifest } from '../support/manifest.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { getAll, runCli, spawnCli, waitFor, type CliResult, type RunningCli } from './lib.js';

const N = Number(process.env.ACETATE_CHAOS_PRUNE_CONTAINERS ?? 24);

describe(`chaos: image prune --all beside acetate run creating ${N} containers of an image`, function () {
  this.timeout(600_000);
  let reg: TestRegistry;
  let work: string;
  let stateDir: string;
  let run: RunningCli | undefined;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-prunechaos-');
    stateDir = await makeTmpStateDir('acetate-prunechaos-state-');
  });
  after(async () => {
    if (run) {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    await cleanupStateDir(stateDir);
    await assertNoLeaks(stateDir, { dirRemoved: true });
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('no prune refused, no create or start failed, all Running without restart, the image whole', async () => {
    const ref = `${reg.host}/chaos/prune:1`;
    const img = await buildImage(path.join(work, 'img'), testImageLayers('prune'), TEST_IMAGE_CONFIG);
    await pushLayout(img.layout, ref);
    const env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
    const dir = path.join(work, 'manifests');
    await mkdir(dir);
    run = spawnCli(['run', '-f', dir, '--log-format', 'json', '--concurrency', '4'], { stateDir, env });
    await waitFor('acetate run to log', () => run!.out().length > 0, { timeoutMs: 20_000 });

    let done = false;
    const prunes: CliResult[] = [];
    // Two loops: a prune also meets a prune (both exclusive, one waits for the other).
    const loop = async (): Promise<void> => {
      while (!done) prunes.push(await runCli(['image', 'prune', '--all'], { stateDir, env, timeoutMs: 120_000 }));
    };
    const pruning = Promise.all([loop(), loop()]);
    try {
      // In three batches: the first one's creates pull the image, the later ones use it.
      const upTo = (b: number): number => Math.round((b * N) / 3);
      for (let b = 0; b < 3; b++) {
        for (let i = upTo(b); i < upTo(b + 1); i++) await writeFile(path.join(dir, `c${i}.yaml`), imageManifest(`c${i}`, ref));
        const want = upTo(b + 1);
        await waitFor(async () => (await getAll(stateDir)).filter((c) => c.phase === 'Running').length === want, {
          timeoutMs: 180_000,
          intervalMs: 200,
          message: () => `${want} containers Running (acetate run stderr: ${run!.err()})`,
        });
      }
    } finally {
      done = true;
      await pruning;
    }

    const bad = prunes.filter((r) => r.code !== 0 || /in use by|acetate\.lock/.test(r.stderr));
    assert.deepEqual(bad, [], 'a prune failed or was refused');
    assert.ok(prunes.length >= 3, `prune ran ${prunes.length} times`);
    const lines = run
      .out()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level?: string; action?: string; result?: string });
    const errors = lines.filter((l) => l.level === 'error' || l.result === 'error');
    assert.deepEqual(errors, [], 'acetate run logged errors (a create or start that lost its image?)');
    assert.equal(lines.filter((l) => l.action === 'create' && l.result === 'created').length, N, 'one create per container');
    const all = await getAll(stateDir);
    assert.deepEqual(
      all.filter((c) => c.phase !== 'Running' || c.restarts !== 0).map((c) => `${c.name}: ${c.phase}, ${c.restarts} restarts`),
      [],
    );
    assert.equal(all.length, N);
    // The image the containers use is whole: its record and every layer dir.
    const store = new ImageStore({ stateDir });
    const [rec] = await store.list();
    assert.ok(rec, 'the image is still on the node');
    for (const l of rec.layers) assert.ok((await lstat(path.join(store.layersDir, l.diffID.slice(7)))).isDirectory());
    console.log(
      `      ${prunes.length} prunes beside ${N} creates, ${prunes.filter((r) => /waiting for image users/.test(r.stderr)).length} of them waited for image users`,
    );
    assert.equal(run.child.exitCode, null, `acetate run exited: ${run.err()}`);
  });
});
