/**
 * Crash trials of pulls: `acetate image pull` SIGKILLed at random moments (seeded) while it
 * copies blobs, verifies them and unpacks layers. After each kill (and after whatever children it
 * left finished), every layer dir the store shows is complete (its content is exactly the
 * reference pull's), no image record names a missing layer, and the next pull succeeds and
 * sweeps what the killed one left.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ImageStore } from '../../src/images/store.js';
import { exec } from '../../src/util/exec.js';
import { CLI, runCli } from '../support/cli.js';
import { buildFiveLayerImage } from '../support/five-layer-image.js';
import { pushLayout } from '../support/oci-image.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { waitFor } from '../support/wait.js';
import { Rng } from './lib.js';

const TRIALS = Number(process.env.ACETATE_PULL_TRIALS ?? 12);
const SEED = Number(process.env.ACETATE_CHAOS_SEED ?? 1414);

async function listing(dir: string): Promise<string> {
  return (await exec('find', [dir, '-mindepth', '1', '-printf', '%P %y %s %m %U:%G\\n'])).stdout.split('\n').sort().join('\n');
}

async function processesMentioning(text: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    const cmd = await exec('cat', [`/proc/${p}/cmdline`]).then(
      (r) => r.stdout,
      () => '',
    );
    if (cmd.includes(text) && Number(p) !== process.pid) out.push(Number(p));
  }
  return out;
}

describe('chaos: SIGKILL during image pulls', function () {
  this.timeout(600_000);
  let reg: TestRegistry;
  let work: string;
  let ref: string;
  let expected: Map<string, string>;
  let fullMs: number;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-pullcrash-');
    const img = await buildFiveLayerImage(path.join(work, 'img'), { mib: 24 });
    ref = `${reg.host}/chaos/app:1`;
    await pushLayout(img.layout, ref);
    const refState = path.join(work, 'reference');
    const t0 = performance.now();
    const r = await runCli(['image', 'pull', ref], { stateDir: refState, env: { ACETATE_REGISTRIES_CONF: reg.registriesConf } });
    fullMs = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    const store = new ImageStore({ stateDir: refState });
    expected = new Map();
    for (const d of await readdir(store.layersDir)) expected.set(d, await listing(path.join(store.layersDir, d)));
    assert.equal(expected.size, 5);
  });

  after(async () => {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  });

  it(`${TRIALS} pulls killed at random moments leave no half layer that is used; the next pull completes`, async () => {
    const rng = new Rng(SEED);
    let interrupted = 0;
    for (let t = 0; t < TRIALS; t++) {
      const stateDir = path.join(work, `trial-${t}`);
      const env = { ...process.env, ACETATE_REGISTRIES_CONF: reg.registriesConf };
      const child = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'image', 'pull', ref], { env, stdio: 'ignore' });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const delay = rng.between(0, Math.round(fullMs));
      const killed = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), delay))]);
      if (killed) {
        child.kill('SIGKILL');
        await exited;
        interrupted++;
      }
      // Children the killed acetate left (skopeo, tar) finish or die on their own.
      await waitFor(`children of trial ${t} gone`, async () => (await processesMentioning(stateDir)).length === 0, { timeoutMs: 60_000 });
      const store = new ImageStore({ stateDir });
      for (const d of await readdir(store.layersDir).catch(() => [] as string[])) {
        if (d.startsWith('.')) continue; // an unpack in progress: never used, swept later
        assert.equal(await listing(path.join(store.layersDir, d)), expected.get(d), `trial ${t} (killed after ${delay} ms): layer ${d} is complete`);
      }
      for (const r of await store.list()) {
        for (const l of r.layers)
          assert.ok(
            expected.has(l.diffID.slice(7)) && (await readdir(store.layersDir)).includes(l.diffID.slice(7)),
            `trial ${t}: the record names only present layers`,
          );
      }
      const again = await runCli(['image', 'pull', ref], { stateDir, env });
      assert.equal(again.code, 0, `trial ${t}: the next pull completes: ${again.stderr}`);
      const layers = (await readdir(store.layersDir)).sort();
      assert.deepEqual(layers, [...expected.keys()].sort(), `trial ${t}: every layer once, nothing half-done left`);
      for (const d of layers) assert.equal(await listing(path.join(store.layersDir, d)), expected.get(d));
      assert.deepEqual(await readdir(path.join(store.dir, 'tmp')), [], `trial ${t}: the killed pull's temp dir was swept`);
      await rm(stateDir, { recursive: true, force: true });
    }
    assert.ok(interrupted >= TRIALS / 2, `most trials interrupted a pull (${interrupted}/${TRIALS})`);
  });
});
