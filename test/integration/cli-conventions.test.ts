/**
 * The conventions scripts rely on, as kubectl, Podman and Docker have them, through the real CLI on
 * a real container: `exec` of a command that cannot start exits 127 (not found) or 126 (not
 * executable) with one acetate line instead of runc's; a command's options without `--` get the
 * corrected command line; `logs --tail -1` is all and `--tail 0` none (with -f: only new lines);
 * `logs` of an unknown container says so with the `acetate:` prefix.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { runCli, startCli } from '../support/cli.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';

describe('CLI conventions: exec exit codes, --, logs --tail (real runc, real CLI)', function () {
  this.timeout(90_000);
  let stateDir: string;
  let dirs: CliDirs;
  const cli = (args: string[]) => runCli(args, { stateDir });

  before(async () => {
    let dir: string;
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'box.yaml'), manifest('box', { script: 'for i in 1 2 3 4 5; do echo "line $i"; done; exec sleep 100000' }));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await cli(['logs', 'box'])).stdout.includes('line 5'), { what: 'box logged its lines' });
  });
  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('exec: 127 for a command not found, 126 for one not executable, each with one acetate line', async () => {
    const cases: [string[], number, string][] = [
      [['nosuchbin'], 127, 'acetate: exec in default/box: "nosuchbin": executable file not found in $PATH'],
      [['/nonexistent/cmd', '-x'], 127, 'acetate: exec in default/box: "/nonexistent/cmd": stat /nonexistent/cmd: no such file or directory'],
      [['/etc/passwd'], 126, 'acetate: exec in default/box: "/etc/passwd": permission denied (not executable)'],
      [['/tmp'], 126, 'acetate: exec in default/box: "/tmp": permission denied (not executable)'],
    ];
    for (const [command, code, line] of cases) {
      const r = await cli(['exec', 'box', '--', ...command]);
      assert.equal(r.code, code, `${command.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `${line}\n`, 'one line, not runc');
      assert.equal(r.stdout, '');
    }
  });

  it('exec: a script whose #! interpreter is missing exits 127, a file of an unknown format 126, each with one acetate line', async () => {
    const made = await cli([
      'exec',
      'box',
      '--',
      'sh',
      '-c',
      'printf "#!/nonexistent/sh\\necho hi\\n" > /tmp/noint.sh; printf "\\177ELFjunk" > /tmp/badfmt; chmod +x /tmp/noint.sh /tmp/badfmt',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const a = await cli(['exec', 'box', '--', '/tmp/noint.sh']);
    assert.deepEqual(
      [a.code, a.stdout, a.stderr],
      [127, '', 'acetate: exec in default/box: "/tmp/noint.sh": no such file or directory (is its #! interpreter missing from the container?)\n'],
    );
    const b = await cli(['exec', 'box', '--', '/tmp/badfmt']);
    assert.deepEqual([b.code, b.stdout, b.stderr], [126, '', 'acetate: exec in default/box: "/tmp/badfmt": exec format error (cannot be run)\n']);
    // The same text printed by a command that ran, then more output: passed through as it was, with its own code.
    const own = await cli(['exec', 'box', '--', 'sh', '-c', 'echo "exec /tmp/badfmt: exec format error" >&2; echo more >&2; exit 1']);
    assert.deepEqual([own.code, own.stderr], [1, 'exec /tmp/badfmt: exec format error\nmore\n']);
  });

  it("exec: the command's own stderr and exit code pass through, also a line that looks like runc's", async () => {
    const r = await cli(['exec', 'box', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
    // The command ran (runc wrote its pid file): its own line and 255 are kept as they are.
    const fake = 'time="x" level=error msg="exec failed: unable to start container process: exec: \\"y\\": executable file not found in $PATH"';
    const f = await cli(['exec', 'box', '--', 'sh', '-c', `printf '%s\\n' '${fake}' >&2; exit 255`]);
    assert.deepEqual([f.code, f.stderr], [255, `${fake}\n`]);
  });

  it("exec: options of the command without -- get the command line with -- in place; after --, -h is the command's", async () => {
    const r = await cli(['exec', 'box', 'ls', '-l', '/']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^acetate: Unknown option '-l': options of the command go after --, as in: acetate exec box -- ls -l \/\n/);
    const q = await cli(['exec', '-n', 'default', 'box', 'sh', '-c', 'echo $0']);
    assert.match(q.stderr, /as in: acetate exec -n default box -- sh -c 'echo \$0'\n/);
    const h = await cli(['exec', 'box', '--', 'ls', '-h', '/']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^etc$/m, "ls's output, not acetate's help");
    const fixed = await cli(['exec', 'box', '--', 'ls', '-l', '/']);
    assert.equal(fixed.code, 0, fixed.stderr);
  });

  it('logs --tail: -1 all lines, 0 none, N the last N; not a number is refused', async () => {
    const lines = async (...args: string[]) => {
      const r = await cli(['logs', 'box', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    const all = await lines();
    assert.deepEqual(all, ['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
    assert.deepEqual(await lines('--tail', '-1'), all);
    assert.deepEqual(await lines('--tail=-1'), all);
    assert.deepEqual(await lines('--tail', '0'), []);
    assert.deepEqual(await lines('--tail', '2'), ['line 4', 'line 5']);
    const bad = await cli(['logs', 'box', '--tail', 'x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^acetate: --tail: 'x' is not a whole number/);
  });

  it('logs -f --tail 0 prints only lines written after it starts', async () => {
    const follow = startCli(['logs', 'box', '-f', '--tail', '0'], { stateDir, timeoutMs: 60_000 });
    try {
      // The follow has opened the log once it runs a moment; lines before it must not appear.
      await waitFor(
        async () => {
          await cli(['exec', 'box', '--', 'sh', '-c', 'echo new-line > /proc/1/fd/1']);
          return follow.stdout().includes('new-line');
        },
        { what: 'the follower printed the new line' },
      );
      assert.doesNotMatch(follow.stdout(), /line [1-5]/);
      assert.match(follow.stdout(), /^(new-line\n)+$/);
    } finally {
      follow.child.kill('SIGINT');
      await follow.done;
    }
  });

  it('a node setting that cannot be read (ACETATE_MIN_FREE) stops apply before anything is done: nothing destroyed', async () => {
    const pid = async () => JSON.parse((await cli(['get', 'box', '-o', 'json'])).stdout).status?.pid as number | undefined;
    const before = await pid();
    assert.ok(before, 'box runs');
    const empty = await mkdtemp(path.join(os.tmpdir(), 'acetate-empty-'));
    const r = await runCli(['apply', '-f', empty, '--allow-empty'], { stateDir, env: { ACETATE_MIN_FREE: 'lots' } }).finally(() =>
      rm(empty, { recursive: true }),
    );
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^acetate: ACETATE_MIN_FREE="lots" is not a quantity such as 2Gi/);
    assert.equal(await pid(), before, 'box kept running: the plan (destroy box) was not applied');
  });

  it('logs of an unknown container: the acetate: prefix, exit 1', async () => {
    const r = await cli(['logs', 'nope']);
    assert.deepEqual([r.code, r.stderr, r.stdout], [1, 'acetate: container default/nope not found\n', '']);
  });
});
