/**
 * What reaches the user's terminal, through the real CLI on real containers:
 * - `acetate logs` gives the container's bytes unchanged (random binary output, a last line with
 *   no newline), plain and under -f;
 * - `logs --previous` after a restart and after a replace;
 * - `logs -f` over 200,000 fast lines with a small rotation size loses none;
 * - `get`, `describe` (text) never print a raw control character a probe's output holds, while
 *   `-o json` keeps it exactly;
 * - an image whose config `User` and `Env` hold escape sequences: `plan`, `apply`, `get` and
 *   `describe` print none raw.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { CLI, runCli, NODE_IDS_BY_DEFAULT } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';
import { buildImage, imageManifest, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, stopRegistryAndAssertGone, type TestRegistry } from '../support/registry.js';

/** Every C0 control but newline, DEL, every C1 control: what a terminal acts on. */
// eslint-disable-next-line no-control-regex -- what the test looks for
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** The CLI, its stdout kept as bytes. */
function startBytes(stateDir: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [CLI, '--state-dir', stateDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...NODE_IDS_BY_DEFAULT, ...process.env, ...env },
  });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const done = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    }),
  );
  return { child, out: () => Buffer.concat(chunks), stderr: () => stderr, done };
}

async function logBytes(stateDir: string, args: string[]): Promise<Buffer> {
  const r = startBytes(stateDir, ['logs', ...args]);
  assert.equal(await r.done, 0, r.stderr());
  return r.out();
}

describe('container output reaches the terminal as it should (real runc, real CLI)', function () {
  this.timeout(240_000);
  let dirs: CliDirs;
  let stateDir: string;
  let dir: string;
  let input: string;
  const apply = async (env: NodeJS.ProcessEnv = {}) => {
    // No crash-loop back-off to wait out between the runs of a container that exits.
    const r = await runCli(['apply', '-f', dir], { stateDir, env: { ACETATE_CRASHLOOP_BASE_MS: '100', ...env } });
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    input = await mkdtemp('/tmp/acetate-logs-in-');
  });

  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
    await rm(input, { recursive: true, force: true });
  });

  it('logs of 2,000 random bytes is byte-exact, plain and under -f (no newline added at the end)', async () => {
    // Ends without a newline: conmon's last entry is a partial line, shown as it is.
    const bytes = Buffer.concat([randomBytes(1999), Buffer.from([0x41])]);
    await writeFile(path.join(input, 'random.bin'), bytes);
    await writeFile(
      path.join(dir, 'bin.yaml'),
      manifest('bin', {
        script: 'cat /mnt/in/random.bin; exec sleep 100000',
        extra: `  mounts: [{ hostPath: ${input}, containerPath: /mnt/in, readOnly: true }]\n`,
      }),
    );
    await apply();
    const got = await waitFor('2,000 bytes logged', async () => {
      const b = await logBytes(stateDir, ['bin']);
      return b.length >= bytes.length ? b : undefined;
    });
    assert.equal(got.length, bytes.length);
    assert.ok(got.equals(bytes), 'the same bytes');
    const f = startBytes(stateDir, ['logs', '-f', 'bin']);
    await waitFor('-f printed the 2,000 bytes', () => f.out().length >= bytes.length);
    f.child.kill('SIGTERM');
    assert.equal(await f.done, 0, f.stderr());
    assert.ok(f.out().equals(bytes), `-f: ${f.out().length} bytes, the same bytes`);
  });

  it('logs --previous shows the run before a restart, and the old container after a replace', async () => {
    await writeFile(
      path.join(dir, 'runs.yaml'),
      manifest('runs', { script: 'echo "run $(cat /proc/sys/kernel/random/uuid)"; exit 0', restartPolicy: 'Always' }),
    );
    await apply();
    const exited = async () => JSON.parse((await runCli(['get', 'runs', '-o', 'json'], { stateDir })).stdout).status?.phase !== 'Running';
    await waitFor('the first run ended', exited);
    const first = (await logBytes(stateDir, ['runs'])).toString();
    assert.match(first, /^run [0-9a-f-]{36}\n$/);
    // No previous run yet: an error, exit 1, as kubectl's "previous terminated container … not found".
    const none = await runCli(['logs', 'runs', '-p'], { stateDir });
    assert.deepEqual([none.code, none.stdout, none.stderr], [1, '', 'acetate: default/runs has no previous run: it has not restarted or been replaced\n']);
    await apply(); // starts it again: a new process, a new log
    await waitFor('the second run logged', async () => /^run /.test((await logBytes(stateDir, ['runs'])).toString()) && (await exited()));
    const second = (await logBytes(stateDir, ['runs'])).toString();
    assert.match(second, /^run [0-9a-f-]{36}\n$/);
    assert.notEqual(second, first);
    assert.equal((await logBytes(stateDir, ['runs', '--previous'])).toString(), first);
    // A replace (the command changed): the old container's log becomes the previous one.
    await writeFile(path.join(dir, 'runs.yaml'), manifest('runs', { script: 'echo replaced; exec sleep 100000', restartPolicy: 'Always' }));
    await apply();
    await waitFor('the new container logged', async () => (await logBytes(stateDir, ['runs'])).toString() === 'replaced\n');
    assert.equal((await logBytes(stateDir, ['runs', '-p'])).toString(), second);
  });

  it('logs -f over 200,000 fast lines with a 4 MiB rotation (2 rotations of ~10 MB of log) loses none, in order', async function () {
    // CPU-bound (conmon and the follower on 2 cores shared with the other test files): up to 5 minutes.
    this.timeout(360_000);
    await writeFile(
      path.join(dir, 'fast.yaml'),
      manifest('fast', {
        script: 'echo waiting; while [ ! -e /mnt/in/go ]; do sleep 0.05; done; seq 1 200000; exec sleep 100000',
        extra: `  mounts: [{ hostPath: ${input}, containerPath: /mnt/in, readOnly: true }]\n`,
      }),
    );
    await apply({ ACETATE_LOG_SIZE_MAX: '4Mi' });
    const f = startBytes(stateDir, ['logs', '-f', 'fast']);
    // The follower is on the file before the container writes the lines.
    await waitFor('the follower printed the first line', () => f.out().toString() === 'waiting\n', { timeoutMs: 30_000 });
    await writeFile(path.join(input, 'go'), '');
    const lines = () => f.out().toString().split('\n');
    const t0 = Date.now();
    await waitFor('200,000 lines followed', () => f.out().toString().endsWith('200000\n'), { timeoutMs: 300_000 });
    const ms = Date.now() - t0;
    f.child.kill('SIGTERM');
    await f.done;
    const got = lines().filter(Boolean).slice(1);
    assert.equal(got.length, 200_000, `${got.length} lines; stderr: ${f.stderr()}`);
    got.forEach((l, i) => {
      if (l !== String(i + 1)) assert.fail(`line ${i + 1} is '${l}'`);
    });
    assert.equal(f.stderr(), '', 'no rotated file was missed');
    // The log was rotated: what is left of it holds only the end.
    const left = (await logBytes(stateDir, ['fast'])).toString().split('\n').filter(Boolean);
    assert.ok(left.length < 100_000 && left.at(-1) === '200000', `${left.length} lines left in the log`);
    console.log(`      200,000 lines followed across 2 rotations in ${ms} ms`);
  });

  it("get and describe print a probe's escape sequences escaped; -o json keeps them exactly", async () => {
    const hostile = '\\033[2J\\033]52;c;aGk=\\007\\033]0;pwned\\007\\302\\2333m';
    await writeFile(
      path.join(dir, 'esc.yaml'),
      manifest('esc', {
        extra: `  readinessProbe:
    exec: { command: [sh, -c, 'printf "${hostile} not ready"; exit 1'] }
    periodSeconds: 1
`,
      }),
    );
    const loop = new CliProcess(['run', '-f', dir, '--metrics-addr', '0', '--process-poll', '300ms', '--log-format', 'text'], { stateDir });
    try {
      const rec = await waitFor(
        'the probe failed with its output',
        async () => {
          const r = await runCli(['describe', 'esc', '-o', 'json'], { stateDir });
          const c = (JSON.parse(r.stdout) as StatusRecord).status.conditions?.find((x) => x.type === 'Ready');
          return c?.message?.includes('not ready') ? c : undefined;
        },
        { timeoutMs: 30_000 },
      );
      // JSON is exact data: the message holds the raw ESC and the C1 CSI the probe printed.
      assert.ok(rec.message!.includes('\x1b]52;c;aGk=\x07'), JSON.stringify(rec.message));
      assert.ok(rec.message!.includes('\u009b3m'), JSON.stringify(rec.message));
      for (const args of [['get'], ['get', 'esc'], ['get', '-o', 'wide'], ['describe', 'esc']]) {
        const r = await runCli(args, { stateDir });
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stdout, RAW_CONTROL, `${args.join(' ')}: ${JSON.stringify(r.stdout)}`);
        assert.doesNotMatch(r.stderr, RAW_CONTROL, `${args.join(' ')} (stderr)`);
      }
      const d = await runCli(['describe', 'esc'], { stateDir });
      assert.ok(d.stdout.includes('\\x1b]52;c;aGk=\\a'), `the sequence shown escaped: ${d.stdout}`);
      for (const args of [
        ['get', 'esc', '-o', 'json'],
        ['describe', 'esc', '-o', 'json'],
      ]) {
        const r = await runCli(args, { stateDir });
        assert.doesNotMatch(r.stdout, RAW_CONTROL, args.join(' '));
        assert.ok(JSON.stringify(JSON.parse(r.stdout)).includes('\\u001b]52;c;aGk=\\u0007'), `${args.join(' ')} keeps the data`);
      }
      // acetate's own log lines (text form, as on a terminal) carry no raw control either.
      assert.doesNotMatch(loop.stdout, RAW_CONTROL, 'acetate run log');
    } finally {
      await loop.stop();
    }
  });
});

describe("an image config's escape sequences (User, Env) never reach the terminal raw (real registry, real CLI)", function () {
  this.timeout(240_000);
  let reg: TestRegistry;
  let work: string;
  let dirs: CliDirs;
  let image: string;

  before(async () => {
    reg = await startRegistry();
    work = await mkdtemp('/tmp/acetate-esc-img-');
    const img = await buildImage(path.join(work, 'img'), testImageLayers('esc'), {
      ...TEST_IMAGE_CONFIG,
      // No such user in the image: the error quotes it.
      User: 'nobody\x1b]0;pwned\x07\x1b]52;c;aGk=\x07\u009b2J',
      Env: ['PATH=/bin:/usr/bin', 'X=\x1b[2J\x1b[H'],
    });
    await pushLayout(img.layout, `${reg.host}/test/esc:v1`);
    image = `${reg.host}/test/esc:v1`;
    dirs = await cliDirs();
  });

  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
    await stopRegistryAndAssertGone(reg);
    await rm(work, { recursive: true, force: true });
  });

  it('plan, apply, get and describe show the User escaped', async () => {
    const env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
    await writeFile(path.join(dirs.dir, 'u.yaml'), imageManifest('u', image));
    const shown: string[] = [];
    for (const args of [['plan', '-f', dirs.dir], ['apply', '-f', dirs.dir], ['get'], ['get', 'u', '-o', 'wide'], ['describe', 'u']]) {
      const r = await runCli(args, { stateDir: dirs.stateDir, env });
      assert.doesNotMatch(r.stdout, RAW_CONTROL, `${args[0]}: ${JSON.stringify(r.stdout)}`);
      assert.doesNotMatch(r.stderr, RAW_CONTROL, `${args[0]} (stderr): ${JSON.stringify(r.stderr)}`);
      shown.push(r.stdout + r.stderr);
    }
    // The refusal names the User, escaped (apply cannot create the container).
    assert.ok(
      shown.some((t) => t.includes('nobody\\x1b]0;pwned\\a')),
      shown.join('\n---\n'),
    );
  });
});
