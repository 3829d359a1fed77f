/**
 * A tenant fills its own disk (resources.disk: blocks, then inodes, and keeps grabbing whatever
 * is freed), so that no marker can be placed in its private area. Node data made after its start
 * (root's 0700 dirs at `/` and in /var/lib: readable by the container's root until hidden, since root is
 * among the ids mapped for the OS, host-ids.ts) must still be hidden while `run` runs: acetate
 * keeps room for itself on every disk image (disk/room-reserve.ts) and freezes the container while
 * it uses it (runc/freeze-for-room.ts), so the tenant cannot take that room first.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { exec } from '../../src/util/exec.js';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { shellManifest } from '../support/manifest.js';
import { RESERVE_BYTES, RESERVE_FILE } from '../../src/runtime/disk/room-reserve.js';

/** Blocks first (one big file), then every inode it can get. */
const FILL = ['dd if=/dev/zero of=/fill bs=64k 2>/dev/null', 'i=0; while touch /f$i 2>/dev/null; do i=$((i+1)); done', 'echo "full after $i files"'].join('; ');
const SPEC = '  securityContext: { hostUsers: false }\n  resources: { disk: 32Mi, memory: 64Mi }\n';

describe('host view on a full disk: node data made after the start is hidden even from a tenant that filled its disk (real runc, XFS)', function () {
  this.timeout(180_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  const env = () => ({ ACETATE_RUN_DIR: runDir });
  const cli = (args: string[]) => runCli(args, { stateDir, env: env() });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const logs = async (name: string) => (await cli(['logs', name])).stdout;
  const waitLog = (name: string, text: string, timeoutMs = 60_000) =>
    waitFor(async () => (await logs(name)).includes(text), { what: `${name} logs '${text}'`, timeoutMs });

  beforeEach(async () => {
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-fulldisk-', { userns: true }));
  });
  afterEach(() => destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply }));

  it("hides root's new 0700 dirs at / and in /var/lib, ten node changes in a row, from a container that filled its blocks and inodes and grabs every freed byte; it runs on, its data intact", async () => {
    const tag = `acetate-full-${process.pid}-${Date.now()}`;
    // Root's new 0700 dirs at the node's `/` and in /var/lib (/opt is an opaque dir in the
    // container already: what the node adds there never shows), made one change after another.
    const made = Array.from({ length: 10 }, (_, i) => (i % 2 ? `/var/lib/${tag}-${i}` : `/${tag}-${i}`));
    const secret = `s3cret-${tag}`;
    // The disk filled; then, in the background, a writer that takes any block or inode freed
    // (appends and new files, without pause), and the poller.
    const cmd = [
      FILL,
      '(j=0; while :; do touch /g$j 2>/dev/null && j=$((j+1)); head -c 4096 /dev/zero >> /fill 2>/dev/null; done) & k=0',
      `while :; do ls -A / /var/lib | grep -q ${tag} && echo "LISTED $k"; cat /${tag}-*/secret.conf /var/lib/${tag}-*/secret.conf 2>/dev/null | grep -q ${secret} && echo "READ $k"; k=$((k+1)); echo "tick $k"; sleep 0.05; done`,
    ].join('; ');
    await writeFile(path.join(dir, 'full.yaml'), shellManifest('full', { command: cmd, spec: SPEC }));
    const run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir, env: env() });
    const reserve = path.join(stateDir, 'containers', 'default_full', 'disk', RESERVE_FILE);
    const held = async () => (await stat(reserve)).blocks * 512;
    try {
      await waitLog('full', 'tick 3');
      assert.match(await logs('full'), /full after \d+ files/);
      assert.equal(await held(), RESERVE_BYTES, 'the room is kept outside the container');
      const probe = `ls -A / /var/lib | grep ${tag}; cat /${tag}-*/secret.conf /var/lib/${tag}-*/secret.conf 2>/dev/null; echo probed`;
      for (const m of made) {
        await mkdir(m, { mode: 0o700 });
        await writeFile(path.join(m, 'secret.conf'), `${secret}\n`, { mode: 0o600 });
        await waitFor(
          async () => {
            const r = await cli(['exec', 'full', '--', 'sh', '-c', probe]);
            return r.code === 0 && r.stdout.trim() === 'probed';
          },
          { what: `${m} neither listed nor readable`, timeoutMs: 20_000, intervalMs: 100 },
        );
      }
      // The poller reads and lists no more, and still runs (not left frozen).
      const out = await logs('full');
      const tick = Number([...out.matchAll(/tick (\d+)/g)].pop()?.[1]);
      const seen = (text: string) => (text.match(/READ|LISTED/g) ?? []).length;
      await waitLog('full', `tick ${tick + 10}`);
      assert.equal(seen(await logs('full')), seen(out), 'the container still sees the node data');
      // Its own data stays (what it wrote is its own); no pause is left; acetate's room is almost
      // whole again: it lost only what ten markers took, not what the writer grabbed.
      const own = await cli(['exec', 'full', '--', 'sh', '-c', 'test -s /fill && echo kept']);
      assert.equal(own.stdout.trim(), 'kept', own.stderr);
      assert.ok(!existsSync(path.join(runDir, 'containers', 'default_full', 'frozen-for-room')), 'no pause left');
      assert.ok((await held()) >= RESERVE_BYTES * 0.75, `the room kept again: ${await held()} bytes`);
    } finally {
      await run.stop();
      for (const m of made) await rm(m, { recursive: true, force: true });
    }
  });

  it('a container that filled its disk starts again, writable, with node data made meanwhile hidden; with the room used up its start is refused, and a larger disk starts it', async () => {
    const tag = `acetate-full-start-${process.pid}-${Date.now()}`;
    const made = [`/var/lib/${tag}-a`, `/var/lib/${tag}-b`];
    const file = path.join(dir, 'full.yaml');
    const write = (state: string, disk = '32Mi') =>
      writeFile(file, shellManifest('full', { command: `${FILL}; exec sleep 100000`, spec: `${SPEC.replace('32Mi', disk)}  state: ${state}\n` }));
    const probe = async () =>
      (
        await cli([
          'exec',
          'full',
          '--',
          'sh',
          '-c',
          `ls -A /var/lib | grep ${tag}; cat /var/lib/${tag}-*/secret.conf 2>/dev/null; touch /after 2>&1 | grep -o Read-only; test -s /fill && echo kept`,
        ])
      ).stdout.trim();
    const makeNodeDir = async (m: string) => {
      await mkdir(m, { mode: 0o700 });
      await writeFile(path.join(m, 'secret.conf'), 'secret\n', { mode: 0o600 });
    };
    await write('Running');
    assert.equal((await apply()).code, 0);
    await waitLog('full', 'full after');
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    try {
      await makeNodeDir(made[0]!);
      await write('Running');
      let r = await apply();
      assert.equal(r.code, 0, `the start failed: ${r.stdout}${r.stderr}`);
      // Not mounted read-only: overlayfs had an inode for its work dir (ENOSPC inside, not EROFS).
      assert.equal(await probe(), 'kept');
      // acetate's room used up (as by a thousand markers while the disk stayed full): the start
      // is refused, saying why, rather than made with the node's new data shown.
      await write('Stopped');
      assert.equal((await apply()).code, 0);
      const disk = path.join(stateDir, 'containers', 'default_full', 'disk');
      await truncate(path.join(disk, RESERVE_FILE), 0);
      await exec('sh', ['-c', `dd if=/dev/zero of=${disk}/.test-taken bs=4k 2>/dev/null; true`]);
      await makeNodeDir(made[1]!);
      await write('Running');
      r = await apply();
      assert.notEqual(r.code, 0);
      assert.match(`${r.stdout}${r.stderr}`, /disk is full.*room on it is used up.*not started: grow resources\.disk/s);
      // A larger disk: the reserve is filled from the new room, and it starts with both hidden.
      await write('Running', '48Mi');
      r = await apply();
      assert.equal(r.code, 0, `the start failed: ${r.stdout}${r.stderr}`);
      assert.equal(await probe(), 'kept');
    } finally {
      for (const m of made) await rm(m, { recursive: true, force: true });
    }
  });

  it('a container an earlier acetate left frozen for room (killed before it resumed it) is resumed by the next run', async () => {
    await writeFile(path.join(dir, 'fz.yaml'), shellManifest('fz', { command: 'k=0; while :; do k=$((k+1)); echo "tick $k"; sleep 0.05; done' }));
    assert.equal((await apply()).code, 0);
    await waitLog('fz', 'tick 2');
    // What an acetate killed between its pause and its resume leaves: the marker, the container frozen.
    const id = 'default_fz';
    const runcRoot = path.join(runDir, 'runc');
    const { pid } = JSON.parse((await exec('runc', ['--root', runcRoot, 'state', id])).stdout) as { pid: number };
    await writeFile(path.join(runDir, 'containers', id, 'frozen-for-room'), `${pid}\n`);
    await exec('runc', ['--root', runcRoot, 'pause', id]);
    const frozenAt = Number([...(await logs('fz')).matchAll(/tick (\d+)/g)].pop()?.[1]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(Number([...(await logs('fz')).matchAll(/tick (\d+)/g)].pop()?.[1]), frozenAt, 'frozen');
    const run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir, env: env() });
    try {
      await waitLog('fz', `tick ${frozenAt + 5}`, 20_000);
      await waitFor(async () => !existsSync(path.join(runDir, 'containers', id, 'frozen-for-room')), { what: 'the marker removed', timeoutMs: 5_000 });
    } finally {
      await run.stop();
    }
  });

  it("with acetate's room used up, the container's status says node data may show (HostViewCurrent False, no node path in it), and True once the tenant frees space and the marker lands", async () => {
    const tag = `acetate-full-cond-${process.pid}-${Date.now()}`;
    const made = `/${tag}`;
    await writeFile(path.join(dir, 'full.yaml'), shellManifest('full', { command: `${FILL}; exec sleep 100000`, spec: SPEC }));
    const run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir, env: env() });
    const hostView = async () => (await cli(['describe', 'full'])).stdout.split('\n').find((l) => l.trimStart().startsWith('HostViewCurrent')) ?? '';
    try {
      await waitLog('full', 'full after');
      // acetate's room used up (as by many markers while the disk stayed full).
      const disk = path.join(stateDir, 'containers', 'default_full', 'disk');
      await truncate(path.join(disk, RESERVE_FILE), 0);
      await exec('sh', ['-c', `dd if=/dev/zero of=${disk}/.test-taken bs=4k 2>/dev/null; true`]);
      await mkdir(made, { mode: 0o700 });
      await waitFor(async () => /False\s+MarkersNotPlaced/.test(await hostView()), { what: 'HostViewCurrent False', timeoutMs: 20_000 });
      const line = await hostView();
      assert.match(line, /disk is full/);
      assert.ok(!line.includes(tag), `the node's path stays out of the container's status: ${line}`);
      // The tenant frees space: the retry (every 5 s) places the marker, the status says so.
      await cli(['exec', 'full', '--', 'rm', '-f', '/fill']);
      await waitFor(async () => /True\s+NoFailure/.test(await hostView()), { what: 'HostViewCurrent True', timeoutMs: 30_000 });
      const probe = await cli(['exec', 'full', '--', 'sh', '-c', `ls -A / | grep ${tag}; echo probed`]);
      assert.equal(probe.stdout.trim(), 'probed');
    } finally {
      await run.stop();
      await rm(made, { recursive: true, force: true });
    }
  });
});
