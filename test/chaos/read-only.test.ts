/**
 * Read-only commands change nothing on disk (issue 12), through the real CLI:
 * - on a state dir that does not exist yet, `plan`, `get`, `describe`, `logs`, `validate`,
 *   `template list`, `image list` and `apply --dry-run` create nothing, nor do `image prune` and
 *   `image rm` (nothing to remove): the listing of its parent is the same before and after each;
 * - run in a loop while `acetate run` creates 40 containers, `plan`, `get` and `describe` never
 *   wait for or fail on the node lock, and never disturb a create (a reader that swept the
 *   writer's `.creating-…` dir would make its rename fail): every create succeeds once, all 40
 *   end Running with no restart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli, type CliResult } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { flatContainers } from '../support/get.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { manifest } from '../support/manifest.js';
import { makeRuntime, makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { exec } from '../../src/util/exec.js';

/** Every path under dir with its type, mode, size and mtime (`find -printf`), sorted. */
async function listing(dir: string): Promise<string> {
  const { stdout } = await exec('find', [dir, '-printf', '%p %y %m %s %T@\n']);
  return stdout.split('\n').sort().join('\n');
}

/** A lock error, or a wait for the lock, as a command would print it. */
const LOCK_TROUBLE = /in use by|waiting for|acetate\.lock/;

describe('read-only commands write nothing (real CLI)', function () {
  this.timeout(120_000);

  it('on a state dir that does not exist, plan, get, describe, logs, validate, template list, image list|prune|rm and apply --dry-run create nothing', async () => {
    const parent = await mkdtemp(path.join('/tmp', 'acetate-ro-'));
    const manifests = await mkdtemp(path.join(os.tmpdir(), 'acetate-ro-m-'));
    try {
      const stateDir = path.join(parent, 'state'); // its run dir: <stateDir>/run
      await writeFile(path.join(manifests, 'a.yaml'), manifest('a'));
      const before = await listing(parent);
      const commands: { args: string[]; code: number; stdout?: RegExp; stderr?: RegExp }[] = [
        { args: ['plan', '-f', manifests], code: 2, stdout: /create\s+default\/a/ },
        { args: ['plan', '-f', manifests, '-o', 'json'], code: 2 },
        { args: ['apply', '-f', manifests, '--dry-run'], code: 0, stdout: /create\s+default\/a/ },
        { args: ['get'], code: 0, stdout: /No containers/ },
        { args: ['get', '-o', 'json'], code: 0 },
        { args: ['describe', 'a'], code: 1, stderr: /not found/ },
        { args: ['logs', 'a'], code: 1, stderr: /not found/ },
        { args: ['validate', manifests], code: 0, stdout: /1 Container\(s\) valid/ },
        { args: ['template', 'list'], code: 0, stdout: /host/ },
        { args: ['image', 'list'], code: 0 },
        // Removers with nothing to remove: taking the images lock would make the dirs and the lock file.
        { args: ['image', 'prune'], code: 0, stdout: /removed 0 image\(s\), 0 layer\(s\), 0 blob\(s\)/ },
        { args: ['image', 'prune', '--all'], code: 0, stdout: /removed 0 image\(s\)/ },
        { args: ['image', 'rm', 'nosuch'], code: 1, stderr: /image 'nosuch' is not on this node/ },
        // An alias, and usage errors that name the subcommands there are.
        { args: ['template', 'ls'], code: 0, stdout: /host/ },
        { args: ['image'], code: 1, stderr: /image needs a subcommand: list, pull, import, rm, prune/ },
        { args: ['template', 'bogus'], code: 1, stderr: /unknown template subcommand 'bogus' \(one of: import, list, describe, rm\)/ },
      ];
      for (const c of commands) {
        const r = await runCli(c.args, { stateDir });
        const what = `acetate ${c.args.join(' ')}: exit ${r.code}\n${r.stderr}`;
        assert.equal(r.code, c.code, what);
        if (c.stdout) assert.match(r.stdout, c.stdout, what);
        if (c.stderr) assert.match(r.stderr, c.stderr, what);
        assert.equal(await listing(parent), before, `${what}\nchanged ${parent}`);
      }
    } finally {
      await rm(parent, { recursive: true, force: true });
      await rm(manifests, { recursive: true, force: true });
    }
  });

  describe('beside `acetate run` creating 40 containers', () => {
    const N = 40;
    let stateDir: string;
    let dir: string;
    let run: CliProcess | undefined;

    before(async () => {
      stateDir = await makeTmpStateDir();
      dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-ro-run-'));
    });
    after(async () => {
      await run?.stop();
      await cleanupStateDir(stateDir);
      await assertNoLeaks(stateDir, { dirRemoved: true });
      await rm(dir, { recursive: true, force: true });
    });

    it('plan, get and describe in a loop never fail on the lock and disturb no create: all 40 end Running', async () => {
      run = new CliProcess(['run', '-f', dir, '--log-format', 'json', '--concurrency', '8'], { stateDir });
      const { lines } = run;
      const stderr = () => run!.stderr;
      // The loop holds the lock once it logs; a reader started before would prove nothing.
      await waitFor(() => lines.length > 0, { timeoutMs: 20_000, message: () => `acetate run to start (stderr: ${stderr()})` });

      // Readers: real CLI processes, one after another in three loops, until every container runs.
      let done = false;
      const runningSeen: number[] = [];
      const failures: string[] = [];
      let calls = 0;
      const check = (args: string[], r: CliResult, okCodes: number[]): void => {
        calls++;
        const what = `acetate ${args.join(' ')}: exit ${r.code ?? r.signal}: ${r.stderr.trim()}`;
        const code = r.code ?? -1;
        // The one failure a reader may report: describe of a container not created yet.
        if (LOCK_TROUBLE.test(r.stderr) || !okCodes.includes(code) || (code === 1 && !/not found/.test(r.stderr))) failures.push(what);
      };
      const loop = async (args: string[], okCodes: number[], after?: (r: CliResult) => void): Promise<void> => {
        while (!done) {
          const r = await runCli(args, { stateDir, timeoutMs: 30_000 });
          check(args, r, okCodes);
          after?.(r);
        }
      };
      // And the runtime as a read-only command opens it (no node lock), listing in a tight loop in
      // this process: a CLI process lists once per ~0.3 s of start-up, this one every few ms, so
      // it may meet the loop's `.creating-…` dirs, which live about a millisecond (a sweep of
      // one fails that create). That a reader never sweeps is checked deterministically, with a
      // planted leftover, in node-lock.test.ts and runtime-interrupted.test.ts.
      let lists = 0;
      const tight = async (): Promise<void> => {
        const reader = makeRuntime(stateDir, { sweepLeftovers: false });
        while (!done) {
          await reader.list().catch((err: unknown) => failures.push(`list(): ${String(err)}`));
          lists++;
        }
      };
      const readers = Promise.all([
        tight(),
        // 2: changes to make (the loop is still creating), 0: nothing left.
        loop(['plan', '-f', dir], [0, 2]),
        loop(['get', '-o', 'json'], [0], (r) => {
          if (r.code === 0) runningSeen.push(flatContainers(r.stdout).filter((c) => c.phase === 'Running').length);
        }),
        // 1 with "not found" until the loop has created it.
        loop(['describe', 'c7'], [0, 1]),
      ]);

      try {
        // In four batches, each awaited: the readers see the loop mid-work every time.
        for (let b = 0; b < 4; b++) {
          for (let i = b * 10; i < (b + 1) * 10; i++) await writeFile(path.join(dir, `c${i}.yaml`), manifest(`c${i}`, { cpu: '50m', memory: '16Mi', pids: 8 }));
          const want = (b + 1) * 10;
          await waitFor(
            async () => {
              const r = await runCli(['get', '-o', 'json'], { stateDir });
              return r.code === 0 && flatContainers(r.stdout).filter((c) => c.phase === 'Running').length === want;
            },
            { timeoutMs: 60_000, intervalMs: 200, message: () => `${want} containers Running (acetate run stderr: ${stderr()})` },
          );
        }
      } finally {
        done = true;
        await readers;
      }

      assert.deepEqual(failures, [], 'a reader failed or met the lock');
      assert.ok(calls >= 9, `the readers ran ${calls} times`);
      assert.ok(lists >= 100, `the in-process reader listed ${lists} times`);
      assert.ok(
        runningSeen.some((n) => n > 0 && n < N),
        `no reader ran while containers were being created (seen: ${runningSeen.join(',')})`,
      );
      // No create failed: one `created` per container, no error logged.
      const errors = lines.filter((l) => l.level === 'error' || l.result === 'error');
      assert.deepEqual(errors, [], 'acetate run logged errors');
      const creates = lines.filter((l) => l.action === 'create');
      assert.equal(creates.length, N, JSON.stringify(creates.filter((l) => l.result !== 'created')));
      assert.ok(
        creates.every((l) => l.result === 'created'),
        JSON.stringify(creates),
      );
      const got = await runCli(['get', '-o', 'json'], { stateDir });
      assert.equal(got.code, 0, got.stderr);
      const all = flatContainers(got.stdout);
      assert.equal(all.length, N);
      assert.deepEqual(
        all.filter((c) => c.phase !== 'Running' || c.restarts !== 0).map((c) => `${c.name}: ${c.phase}, ${c.restarts} restarts`),
        [],
      );
      assert.equal(run.child.exitCode, null, `acetate run exited: ${stderr()}`);
    });
  });
});
