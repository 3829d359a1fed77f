/**
 * runc's start-error line → exit code and one acetate line (the integration test cli-conventions
 * runs the real runc; this covers the lines it cannot easily provoke): escapes undone, controls in
 * a path escaped, other refusals 255, anything else not taken for runc's.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { initExecFailure, relayExecStderr, startFailure } from '../../src/runtime/runc/exec-start-error.js';

const line = (msg: string) => `time="2026-12-06T09:24:52Z" level=error msg="exec failed: ${msg}"\n`;

describe('runc exec start errors', () => {
  it('not found 127, not executable 126, other refusals 255; controls in a path escaped', () => {
    assert.deepEqual(startFailure(line('unable to start container process: exec: \\"x\\": executable file not found in $PATH'), 'default/web'), {
      exitCode: 127,
      message: 'exec in default/web: "x": executable file not found in $PATH',
    });
    assert.equal(startFailure(line('unable to start container process: exec: \\"/bin/x\\": permission denied'), 'k')?.exitCode, 126);
    const esc = startFailure(line('unable to start container process: exec: \\"/tmp/\x1b]52;c;AAAA\x07x\\": permission denied'), 'k');
    assert.equal(esc?.message, 'exec in k: "/tmp/\\x1b]52;c;AAAA\\x07x": permission denied (not executable)');
    assert.equal(startFailure(line('unable to start container process: error adding pid 7 to cgroups'), 'k')?.exitCode, 255);
    assert.equal(startFailure('time="x" level=warning msg="exec failed: y"\n', 'k'), undefined);
    assert.equal(startFailure('exec failed: y\n', 'k'), undefined);
  });

  it("runc init's execve line of the command asked for: 127 for a missing interpreter, 126 for a bad format; not for another name", () => {
    assert.equal(initExecFailure('exec /tmp/a.sh: no such file or directory\n', '/tmp/a.sh', 'k')?.exitCode, 127);
    assert.equal(initExecFailure('exec /usr/local/bin/a.sh: no such file or directory\n', 'a.sh', 'k')?.exitCode, 127);
    assert.equal(initExecFailure('exec /tmp/b: exec format error\n', '/tmp/b', 'k')?.exitCode, 126);
    assert.equal(initExecFailure('exec /tmp/other: exec format error\n', '/tmp/b', 'k'), undefined);
    assert.equal(initExecFailure('exec /tmp/b: input/output error\n', '/tmp/b', 'k'), undefined);
    assert.match(initExecFailure('exec /tmp/\x1b[2Jb: exec format error\n', '/tmp/\x1b[2Jb', 'k')!.message, /\\x1b\[2Jb/);
  });

  it("the relay keeps runc init's line when it came first and runc exited 1; it passes it on when more output followed", async () => {
    const run = async (chunks: string[], code: number, started: boolean) => {
      const from = new PassThrough();
      const out = new PassThrough();
      let seen = '';
      out.on('data', (d: Buffer) => (seen += d.toString()));
      const relay = relayExecStderr(from, out, 'k', '/tmp/b');
      for (const c of chunks) {
        from.write(c);
        await new Promise((r) => setImmediate(r));
      }
      const failure = relay.finish(code, started);
      await new Promise((r) => setImmediate(r));
      return { failure, seen };
    };
    const line = 'exec /tmp/b: exec format error\n';
    assert.deepEqual(await run([line], 1, true), { failure: { exitCode: 126, message: 'exec in k: "/tmp/b": exec format error (cannot be run)' }, seen: '' });
    assert.deepEqual(await run([line, 'more\n'], 1, true), { failure: undefined, seen: line + 'more\n' });
    assert.deepEqual(await run(['first\n', line], 1, true), { failure: undefined, seen: 'first\n' + line });
    assert.deepEqual(await run([line], 2, true), { failure: undefined, seen: line });
  });

  it("the relay passes the command output at once and holds only runc's line", () => {
    const from = new PassThrough();
    const out = new PassThrough();
    const seen: string[] = [];
    out.on('data', (d: Buffer) => seen.push(d.toString()));
    const relay = relayExecStderr(from, out, 'k');
    from.write('hello\n');
    const runcLine = line('unable to start container process: exec: \\"x\\": executable file not found in $PATH');
    from.write(runcLine);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        assert.deepEqual(seen, ['hello\n']);
        assert.equal(relay.finish(255, true), undefined, 'the command ran: its line is its own');
        setImmediate(() => {
          assert.deepEqual(seen, ['hello\n', runcLine]);
          resolve();
        });
      }),
    );
  });
});
