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
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
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

  it("hides root's new 0700 dirs at / and in /var/lib from a container that filled its blocks and inodes and grabs every freed byte; the container runs on, its data intact", async () => {
    const tag = `acetate-full-${process.pid}-${Date.now()}`;
    // Root's new 0700 dirs at the node's `/` and in /var/lib (/opt is an opaque dir in the
    // container already: what the node adds there never shows).
    const made = [`/${tag}`, `/var/lib/${tag}`];
    const secret = `s3cret-${tag}`;
    // The disk filled; then, in the background, a writer that takes any block or inode freed
    // (appends and new files, without pause), and the poller.
    const cmd = [
      FILL,
      '(j=0; while :; do touch /g$j 2>/dev/null && j=$((j+1)); head -c 4096 /dev/zero >> /fill 2>/dev/null; done) & k=0',
      `while :; do ls -A / /var/lib | grep -q ${tag} && echo "LISTED $k"; cat ${made.map((m) => `${m}/secret.conf`).join(' ')} 2>/dev/null | grep -q ${secret} && echo "READ $k"; k=$((k+1)); echo "tick $k"; sleep 0.05; done`,
    ].join('; ');
    await writeFile(path.join(dir, 'full.yaml'), shellManifest('full', { command: cmd, spec: SPEC }));
    const run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir, env: env() });
    try {
      await waitLog('full', 'tick 3');
      assert.match(await logs('full'), /full after \d+ files/);
      const reserve = path.join(stateDir, 'containers', 'default_full', 'disk', RESERVE_FILE);
      assert.equal((await stat(reserve)).size, RESERVE_BYTES, 'the room is kept outside the container');
      for (const m of made) {
        await mkdir(m, { mode: 0o700 });
        await writeFile(path.join(m, 'secret.conf'), `${secret}\n`, { mode: 0o600 });
      }
      const probe = `ls -A / /var/lib | grep ${tag}; cat ${made.map((m) => `${m}/secret.conf`).join(' ')} 2>/dev/null; echo probed`;
      await waitFor(
        async () => {
          const r = await cli(['exec', 'full', '--', 'sh', '-c', probe]);
          return r.code === 0 && r.stdout.trim() === 'probed';
        },
        { what: 'the new dirs neither listed nor readable', timeoutMs: 20_000, intervalMs: 100 },
      );
      // The poller reads and lists no more, and still runs (not left frozen).
      const out = await logs('full');
      const tick = Number([...out.matchAll(/tick (\d+)/g)].pop()?.[1]);
      const seen = (text: string) => (text.match(/READ|LISTED/g) ?? []).length;
      await waitLog('full', `tick ${tick + 10}`);
      assert.equal(seen(await logs('full')), seen(out), 'the container still sees the node data');
      // Its own data stays (what it wrote is its own), and acetate's room is kept again.
      const own = await cli(['exec', 'full', '--', 'sh', '-c', 'test -s /fill && echo kept']);
      assert.equal(own.stdout.trim(), 'kept', own.stderr);
      await waitFor(async () => (await stat(reserve)).size > 0, { what: 'the room kept again', timeoutMs: 10_000 });
    } finally {
      await run.stop();
      for (const m of made) await rm(m, { recursive: true, force: true });
    }
  });

  it('a container that filled its disk starts again with node data made meanwhile hidden (the start uses the room, nothing runs to take it)', async () => {
    const tag = `acetate-full-start-${process.pid}-${Date.now()}`;
    const made = `/var/lib/${tag}`;
    const file = path.join(dir, 'full.yaml');
    const write = (state: string) => writeFile(file, shellManifest('full', { command: `${FILL}; exec sleep 100000`, spec: `${SPEC}  state: ${state}\n` }));
    await write('Running');
    assert.equal((await apply()).code, 0);
    await waitLog('full', 'full after');
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    try {
      await mkdir(made, { mode: 0o700 });
      await writeFile(path.join(made, 'secret.conf'), 'secret\n', { mode: 0o600 });
      await write('Running');
      const r = await apply();
      assert.equal(r.code, 0, `the start failed: ${r.stdout}${r.stderr}`);
      const probe = await cli([
        'exec',
        'full',
        '--',
        'sh',
        '-c',
        `ls -A /var/lib | grep ${tag}; cat ${made}/secret.conf 2>/dev/null; test -s /fill && echo kept`,
      ]);
      assert.equal(probe.stdout.trim(), 'kept', `${probe.stdout}${probe.stderr}`);
    } finally {
      await rm(made, { recursive: true, force: true });
    }
  });

  it('a container an earlier acetate left frozen for room (killed before it resumed it) is resumed by the next run', async () => {
    await writeFile(path.join(dir, 'fz.yaml'), shellManifest('fz', { command: 'k=0; while :; do k=$((k+1)); echo "tick $k"; sleep 0.05; done' }));
    assert.equal((await apply()).code, 0);
    await waitLog('fz', 'tick 2');
    // What an acetate killed between its pause and its resume leaves: the marker, the container frozen.
    const id = 'default_fz';
    await writeFile(path.join(runDir, 'containers', id, 'frozen-for-room'), '1\n');
    await exec('runc', ['--root', path.join(runDir, 'runc'), 'pause', id]);
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
});
