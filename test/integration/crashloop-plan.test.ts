/**
 * What `acetate plan` prints is what `acetate run` does, for a crash-looping container (real runc,
 * the real CLI): while `run` holds a restart back, `plan -o json` lists the held start with its
 * time, and `run` takes no start before that time.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { PACKAGE_ROOT } from '../../src/api/crd.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { readStatusRecord } from '../../src/controller/status-store.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const BIN = path.join(PACKAGE_ROOT, 'bin', 'acetate');
const KEY = 'default/crash';
/** Long enough for `acetate plan` to run inside the back-off, short enough for the suite. */
const BACKOFF_MS = 6000;

interface HeldJson {
  key: string;
  action: string;
  reason: string;
  message: string;
  until?: string;
}

function acetate(stateDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, '--state-dir', stateDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('acetate plan shows the crash-loop back-off acetate run keeps (real runc)', function () {
  this.timeout(60_000);
  let stateDir: string;
  let dir: string;
  let run: ChildProcess | undefined;
  let exited: Promise<number | null>;
  let out = '';
  let err = '';

  before(async () => {
    stateDir = await makeTmpStateDir();
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-manifests-'));
    await writeFile(path.join(dir, 'crash.yaml'), manifest('crash', { script: 'exit 1', restartPolicy: 'Always', cpu: null, pids: null, memory: '32Mi' }));
    run = spawn(
      process.execPath,
      [BIN, '--state-dir', stateDir, 'run', '-f', dir, '--metrics-addr', '0', '--resync', '2s', '--process-poll', '200ms', '--log-format', 'json'],
      {
        env: { ...process.env, ACETATE_CRASHLOOP_BASE_MS: String(BACKOFF_MS), ACETATE_CRASHLOOP_MAX_MS: String(2 * BACKOFF_MS) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    run.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    run.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    exited = new Promise((resolve) => run!.on('exit', (code) => resolve(code)));
  });

  after(async () => {
    if (run && run.exitCode === null && run.signalCode === null) {
      run.kill('SIGTERM');
      assert.equal(await exited, 0, err);
    }
    await cleanupStateDir(stateDir);
    await assertNoLeaks(stateDir);
    await rm(stateDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  /** The JSON log lines of `acetate run` for a start of the container. */
  const startLines = (): { timestamp: string }[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { container?: string; action?: string; result?: string; timestamp: string })
      .filter((l) => l.container === KEY && l.action === 'start' && l.result === 'started');

  it('plan -o json lists the held start with its time; run starts nothing before it', async () => {
    // acetate run holds the restart: its status record says so, with the back-off it keeps.
    const held = await waitFor(
      'run holding the restart back',
      async () => {
        const r = await readStatusRecord(stateDir, KEY);
        const due = r?.crashLoop?.restartAt ? Date.parse(r.crashLoop.restartAt) : 0;
        return r?.waiting?.reason === 'CrashLoopBackOff' && r.actual?.state === 'exited' && due - Date.now() > BACKOFF_MS / 2 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: () => `no held restart; run said:\n${err}${out.slice(-3000)}` },
    );
    const until = held.crashLoop!.restartAt!;

    const planned = await acetate(stateDir, ['plan', '-f', dir, '-o', 'json']);
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
    const text = await acetate(stateDir, ['plan', '-f', dir]);
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
    const logged = startLines()
      .map((l) => Date.parse(l.timestamp))
      .filter((t) => t > exitAt);
    assert.ok(logged.length >= 1, 'the restart is logged');
    assert.ok(Math.min(...logged) >= Date.parse(until), `a start logged at ${new Date(Math.min(...logged)).toISOString()}, before ${until}`);
  });
});
