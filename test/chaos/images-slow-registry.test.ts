/**
 * A registry that is slow to answer stalls only its own containers (real registry, a proxy that
 * holds manifest answers up to 90 s, the real CLI, real runc): an unrelated container is created
 * and runs at once while the other waits (ImageResolving, then ErrImagePull with the registry and
 * the limit named once --registry-timeout expires); `get NAME` shows the waiting reason; `run`
 * exits within its grace period on SIGTERM while a request hangs; a slow download shows its
 * progress in `describe`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, runCli, startCli } from '../support/cli.js';
import { exec } from '../../src/util/exec.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { startFaultyProxy, type FaultyProxy } from '../support/faulty-proxy.js';
import { manifest, imageManifest } from '../support/manifest.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, writeRegistriesConf, type TestRegistry } from '../support/registry.js';
import { cliDirs, type CliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { findProcessesByCmdline } from '../../src/util/processes.js';

/** What a registry that hangs does: the proxy holds manifest answers this long (ended by the test). */
const HANG_MS = 90_000;

describe('a slow registry stalls only its own containers (real registry, delaying proxy, real CLI)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;
  let proxy: FaultyProxy;
  let work: string;
  let dirs: CliDirs;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, { stateDir: dirs.stateDir, env });
  const slowRef = () => `${proxy.host}/slow/app:1`;

  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultyProxy(reg.port);
    work = await mkdtemp('/tmp/acetate-slowreg-');
    // One image of ~3 MiB that does not compress: a paced download takes seconds.
    const img = await buildImage(
      path.join(work, 'img'),
      testImageLayers('slow', [{ build: (d) => writeFile(path.join(d, 'noise'), randomBytes(3 * 2 ** 20)) }]),
      TEST_IMAGE_CONFIG,
    );
    await pushLayout(img.layout, `${reg.host}/slow/app:1`);
    env = { ACETATE_REGISTRIES_CONF: await writeRegistriesConf(path.join(work, 'registries.conf'), [reg.host, proxy.host]) };
  });

  beforeEach(async () => {
    dirs = await cliDirs();
    proxy.delay.paths = /\/v2\/slow\//;
    proxy.delay.ms = HANG_MS;
    proxy.blobBytesPerSec = 0;
  });

  afterEach(async () => {
    proxy.release();
    await dirs.cleanupAndAssertNoLeaks();
    assert.deepEqual(await findProcessesByCmdline(proxy.host), [], 'no skopeo child left asking the proxy');
  });

  after(async () => {
    await proxy.close();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  async function writeBoth(): Promise<void> {
    await writeFile(path.join(dirs.dir, 'web.yaml'), manifest('web'));
    await writeFile(path.join(dirs.dir, 'slow.yaml'), imageManifest('slow', slowRef()));
  }

  /** `acetate get NAME`'s one row, as columns. */
  async function getRow(name: string): Promise<{ code: number | null; row: string; stderr: string }> {
    const r = await cli('get', name);
    return { code: r.code, row: r.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '', stderr: r.stderr };
  }

  it('apply creates an unrelated container at once while the slow one waits; it is created when its registry answers', async () => {
    await writeBoth();
    const t0 = Date.now();
    const apply = startCli(['apply', '-f', dirs.dir], { stateDir: dirs.stateDir, env });
    // web runs although the registry holds slow's manifest for 90 s: while it is still held (the
    // bound is the hang, not a speed target: a loaded machine takes seconds to start processes).
    await waitFor(async () => /\bRunning\b/.test((await getRow('web')).row), { timeoutMs: 60_000, message: 'web running' });
    const webAfterMs = Date.now() - t0;
    assert.ok(webAfterMs < HANG_MS - 20_000, `web ran after ${webAfterMs} ms`);
    assert.equal(apply.child.exitCode, null, 'apply still waits for the slow registry');
    assert.ok(proxy.held() >= 1, 'the manifest request is still held');
    assert.match(apply.stdout(), /left alone default\/slow: ImageResolving: container slow waits for the registry/);
    // The registry answers: slow is planned and created by the same apply.
    proxy.release();
    const done = await apply.done;
    const out = done.stdout;
    assert.equal(done.code, 0, `apply: ${out}\n${done.stderr}`);
    assert.match(out, /default\/slow: the registry answered after \d+\.\ds:\n\s+\+ create\s+default\/slow\s+image /);
    assert.match((await getRow('slow')).row, /\bRunning\b/);
  });

  it('--registry-timeout turns a hang into ErrImagePull naming the registry and the limit; get NAME shows it waiting', async () => {
    await writeBoth();
    const t0 = Date.now();
    const r = await runCli(['--registry-timeout', '2s', 'apply', '-f', dirs.dir], { stateDir: dirs.stateDir, env });
    const tookMs = Date.now() - t0;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(tookMs < 20_000, `apply took ${tookMs} ms with a 2 s limit and a 90 s hang`);
    const named = new RegExp(`registry ${proxy.host.replace(/\./g, '\\.')} did not answer within 2s \\(the registry time limit, --registry-timeout`);
    assert.match(r.stderr, named);
    assert.match(r.stderr, /container slow waits \(ErrImagePull\)/, 'it is the container that waits');
    assert.match(r.stdout, /✓ created default\/web/);

    const slow = await getRow('slow');
    assert.equal(slow.code, 0, `get slow: ${slow.stderr}`);
    assert.doesNotMatch(slow.stderr, /not found/);
    assert.match(slow.row, /^slow\s+Waiting\s+.*ErrImagePull: .*registry 127\.0\.0\.1/);
    const described = await cli('describe', 'slow');
    assert.match(described.stdout, /Waiting:\s+ErrImagePull: .*did not answer within 2s/);

    // The same limit through the environment, for plan: the first plan shows slow as resolving, then its failure.
    // And an image that is not on the node under Never: it is the container that waits.
    await writeFile(path.join(dirs.dir, 'never.yaml'), imageManifest('never', `${reg.host}/none/app:1`, '  imagePullPolicy: Never\n'));
    const p = await runCli(['plan', '-f', dirs.dir], { stateDir: dirs.stateDir, env: { ...env, ACETATE_REGISTRY_TIMEOUT: '1500ms' } });
    assert.equal(p.code, 1, p.stdout + p.stderr);
    assert.match(
      p.stderr,
      /spec\.image: container never waits \(ErrImageNeverPull\): image \S+ is not on this node and imagePullPolicy is Never; pull it first/,
    );
    assert.match(p.stdout, /left alone default\/never: ErrImageNeverPull: container never waits: image /);
    assert.match(p.stdout, /left alone default\/slow: ImageResolving/);
    assert.match(
      p.stdout,
      /default\/slow: the registry answered after \d+\.\ds:\n\s+! left alone default\/slow: ErrImagePull: container slow waits: .*within 1500ms/,
    );

    // image pull under the limit: the same named failure.
    const pull = await runCli(['--registry-timeout', '1s', 'image', 'pull', slowRef()], { stateDir: dirs.stateDir, env });
    assert.equal(pull.code, 1);
    assert.match(pull.stderr, new RegExp(named.source.replace('2s', '1s')));
  });

  it('run: the unrelated container runs at once, the slow one waits in ImageResolving, and SIGTERM ends run within its grace period', async () => {
    await writeBoth();
    const run = new CliProcess(['--registry-timeout', '60s', 'run', '-f', dirs.dir, ...quickRunFlags()], { stateDir: dirs.stateDir, env });
    try {
      const t0 = Date.now();
      await waitFor(async () => /\bRunning\b/.test((await getRow('web')).row), { timeoutMs: 60_000, message: 'web running under run' });
      assert.ok(Date.now() - t0 < HANG_MS - 20_000, 'web ran long before the registry would answer');
      await waitFor(async () => /^slow\s+Waiting\s.*ImageResolving: /.test((await getRow('slow')).row), {
        timeoutMs: 20_000,
        message: 'slow waiting in ImageResolving',
      });
      assert.ok(proxy.held() >= 1, 'the manifest request still hangs');
      // SIGTERM while the request hangs: the skopeo child is killed, run exits well within systemd's 90 s.
      const stopAt = Date.now();
      run.child.kill('SIGTERM');
      const exit = await run.exit;
      const stopMs = Date.now() - stopAt;
      assert.equal(exit.code, 0, run.stderr);
      assert.ok(stopMs < 10_000, `run took ${stopMs} ms to stop while a registry request hung`);
    } finally {
      if (run.running()) await run.stop();
    }
  });

  it('describe shows the progress of a slow download: layers and MiB received', async () => {
    proxy.delay.ms = 0;
    proxy.blobBytesPerSec = 512 * 1024; // ~3 MiB: about 6 s
    await writeFile(path.join(dirs.dir, 'slow.yaml'), imageManifest('slow', slowRef()));
    const run = new CliProcess(['run', '-f', dirs.dir, ...quickRunFlags()], { stateDir: dirs.stateDir, env });
    try {
      const pulling = await waitFor(
        async () => {
          const d = await cli('describe', 'slow');
          const m = /Pull:\s+Pulling image (\S+): (\d+)\/(\d+) layers, ([\d.]+)\/([\d.]+) MiB/.exec(d.stdout);
          return m && Number(m[4]) > 0 && Number(m[4]) < Number(m[5]) ? { text: m[0], total: Number(m[5]), layers: Number(m[3]) } : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, message: 'describe showing a pull in progress' },
      );
      assert.ok(pulling.total >= 3, `the total is the manifest's (${pulling.text})`);
      assert.equal(pulling.layers, 4, pulling.text);
      assert.match((await getRow('slow')).row, /ContainerCreating/);
      await waitFor(async () => /\bRunning\b/.test((await getRow('slow')).row), { timeoutMs: 60_000, message: 'slow running after its pull' });
      assert.doesNotMatch((await cli('describe', 'slow')).stdout, /Pull:/, 'no progress once pulled');
    } finally {
      await run.stop();
    }
  });

  it('image pull on a terminal prints layers and MiB received as they arrive; not when stderr is no terminal', async () => {
    proxy.delay.ms = 0;
    proxy.blobBytesPerSec = 768 * 1024; // ~3 MiB: about 4 s
    // A real pseudo-terminal: script(1) runs the pull with its stdout and stderr on one.
    const line = `${process.execPath} ${CLI} --state-dir ${dirs.stateDir} image pull ${slowRef()}`;
    const r = await exec('script', ['-qec', line, '/dev/null'], { env: { ...process.env, ...env }, timeoutMs: 90_000 });
    const progress = [...r.stdout.matchAll(/Pulling image \S+: (\d+)\/(\d+) layers, ([\d.]+)\/([\d.]+) MiB/g)];
    assert.ok(progress.length >= 1, `progress lines on the terminal: ${r.stdout}`);
    assert.ok(
      progress.some((m) => Number(m[3]) < Number(m[4])),
      `a line while bytes were still coming: ${progress.map((m) => m[0]).join(' | ')}`,
    );
    assert.ok(
      progress.every((m) => m[2] === '4'),
      'four layers in all',
    );
    assert.match(r.stdout, new RegExp(`${slowRef().replace(/[.:/]/g, '\\$&')}: sha256:[a-f0-9]{64} \\(4 layers\\)`));
    // Not a terminal: no progress lines (scripts read stderr too), for the same paced download.
    const other = path.join(work, 'plain-state');
    try {
      const plain = await runCli(['image', 'pull', slowRef()], { stateDir: other, env });
      assert.equal(plain.code, 0, plain.stderr);
      assert.doesNotMatch(plain.stderr, /Pulling image/);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
