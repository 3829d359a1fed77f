/**
 * What `acetate plan` prints is what `acetate run` does, for a crash-looping container (real runc,
 * the real CLI): while `run` holds a restart back, `plan -o json` lists the held start with its
 * time, and `run` takes no start before that time.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { BIN, runCli } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { readStatusRecord } from '../../src/controller/status-store.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const KEY = 'default/crash';
/** Long enough for `acetate plan` to run inside the back-off, short enough for the suite. */
const BACKOFF_MS = 10_000;

interface HeldJson {
  key: string;
  action: string;
  reason: string;
  message: string;
  until?: string;
}

describe('acetate plan shows the crash-loop back-off acetate run keeps (real runc)', function () {
  this.timeout(90_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let run: CliProcess | undefined;

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'crash.yaml'), manifest('crash', { script: 'exit 1', restartPolicy: 'Always', cpu: null, pids: null, memory: '32Mi' }));
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '0', '--resync', '2s', '--process-poll', '200ms', '--log-format', 'json'], {
      stateDir,
      entry: BIN,
      env: { ACETATE_CRASHLOOP_BASE_MS: String(BACKOFF_MS), ACETATE_CRASHLOOP_MAX_MS: String(2 * BACKOFF_MS) },
    });
  });

  after(async () => {
    if (run?.running()) assert.equal((await run.stop()).code, 0, run.stderr);
    await dirs.cleanupAndAssertNoLeaks();
  });

  /** The JSON log lines of `acetate run` for a start of the container. */
  const startLines = () => run!.lines.filter((l) => l.container === KEY && l.action === 'start' && l.result === 'started');

  it('plan -o json lists the held start with its time; run starts nothing before it', async () => {
    // acetate run holds the restart: its status record says so, with the back-off it keeps.
    const held = await waitFor(
      'run holding the restart back',
      async () => {
        const r = await readStatusRecord(stateDir, KEY);
        const due = r?.crashLoop?.restartAt ? Date.parse(r.crashLoop.restartAt) : 0;
        return r?.waiting?.reason === 'CrashLoopBackOff' && r.actual?.state === 'exited' && due - Date.now() > BACKOFF_MS / 2 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: () => `no held restart; run said:\n${run!.stderr}${run!.stdout.slice(-3000)}` },
    );
    const until = held.crashLoop!.restartAt!;

    const planned = await runCli(['plan', '-f', dir, '-o', 'json'], { stateDir, entry: BIN });
    assert.equal(planned.code, 0, `nothing to do now:\n${planned.stdout}${planned.stderr}`);
    const p = JSON.parse(planned.stdout) as { actions: { key: string; kind: string }[]; held: HeldJson[]; requeue: { key: string; at: string }[] };
    assert.deepEqual(
      p.actions.filter((a) => a.key === KEY),
      [],
      'plan takes no start now, as run does not',
    );
    assert.deepEqual(p.held, [{ key: KEY, action: 'start', reason: 'CrashLoopBackOff', message: held.waiting!.message, until }]);
    assert.deepEqual(p.requeue, [{ key: KEY, at: until }]);
    assert.match(held.waiting!.message, /back-off \d+s restarting failed container: exited with code 1/);
    const text = await runCli(['plan', '-f', dir], { stateDir, entry: BIN });
    assert.match(text.stdout, new RegExp(`! held +${KEY}: start blocked by crash-loop back-off until ${new Date(until).toTimeString().slice(0, 8)}`));

    // acetate run: the restart comes at that time, not before.
    const exitAt = Date.parse(held.actual!.finishedAt!);
    const restarted = await waitFor(
      'the restart after the back-off',
      async () => {
        const r = await readStatusRecord(stateDir, KEY);
        return (r?.actual?.restartCount ?? 0) > held.actual!.restartCount ? r : undefined;
      },
      { timeoutMs: 3 * BACKOFF_MS, intervalMs: 100 },
    );
    const startsAfterExit = (rec: StatusRecord): number[] =>
      rec.recentActions.filter((a) => a.kind === 'start' && a.outcome === 'started' && Date.parse(a.time) > exitAt).map((a) => Date.parse(a.time));
    const recorded = startsAfterExit(restarted);
    assert.ok(recorded.length >= 1, JSON.stringify(restarted.recentActions));
    assert.ok(Math.min(...recorded) >= Date.parse(until), `a start at ${new Date(Math.min(...recorded)).toISOString()}, before ${until}`);
    // The record can be read before run has logged the start it records: the log line is waited for.
    const logged = await waitFor(
      'the restart logged',
      () => {
        const t = startLines()
          .map((l) => Date.parse(l.timestamp!))
          .filter((x) => x > exitAt);
        return t.length ? t : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.ok(Math.min(...logged) >= Date.parse(until), `a start logged at ${new Date(Math.min(...logged)).toISOString()}, before ${until}`);
  });
});
