/**
 * `acetate run` under a Type=notify unit, with the service manager's end played by a real unix
 * datagram socket (test/support/notify-socket.ts) named by $NOTIFY_SOCKET, as systemd sets it:
 * READY=1 once the first sync has created the declared containers, WATCHDOG=1 at least every
 * WATCHDOG_USEC while healthy, STOPPING=1 at SIGTERM, every message from acetate's own pid (what
 * NotifyAccess=main accepts).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { NotifySocket } from '../support/notify-socket.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

describe('acetate run notifies systemd (sd_notify over $NOTIFY_SOCKET)', function () {
  this.timeout(120_000);
  let dirs: CliDirs;
  let sock: NotifySocket | undefined;
  let acetate: CliProcess | undefined;

  beforeEach(async () => {
    dirs = await cliDirs();
  });
  afterEach(async () => {
    await acetate?.stop();
    acetate = undefined;
    await sock?.close();
    sock = undefined;
    await dirs.cleanupAndAssertNoLeaks();
  });

  const runningPid = async (name: string): Promise<number | undefined> => {
    const r = await runCli(['describe', name, '-o', 'json'], { stateDir: dirs.stateDir });
    if (r.code !== 0) return undefined;
    const rec = JSON.parse(r.stdout) as StatusRecord;
    return rec.actual?.state === 'running' ? rec.actual.pid : undefined;
  };

  it('sends READY=1 after the first sync, WATCHDOG=1 within every WATCHDOG_USEC, STOPPING=1 at SIGTERM', async () => {
    await writeFile(path.join(dirs.dir, 'web.yaml'), manifest('web'));
    sock = await NotifySocket.open();
    // 6 s (pings every 3 s): each ping is a systemd-notify process, queued behind the start-up's
    // spawns; a loaded CI machine must not make a 1.5 s margin the thing measured.
    const watchdogUsec = 6_000_000;
    acetate = new CliProcess(['run', '-f', dirs.dir, ...quickRunFlags()], {
      stateDir: dirs.stateDir,
      env: { NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: String(watchdogUsec) },
    });
    const pid = acetate.pid!;
    const ready = await sock.next('READY');
    // The first sync is done when READY=1 comes: the declared container runs already.
    assert.ok(await runningPid('web'), 'web runs when READY=1 has arrived');
    assert.equal(ready.fields.get('READY'), '1');
    assert.match(ready.fields.get('STATUS') ?? '', /^ready: 1 container declared/);
    assert.ok(acetate.logged(/^ready: first sync done$/));
    const readyLog = acetate.lines.findIndex((l) => /^ready: first sync done$/.test(l.message));
    assert.ok(
      acetate.lines.slice(0, readyLog).some((l) => l.container === 'default/web' && l.action === 'create'),
      'the create of web was logged before the loop called itself ready',
    );

    // Pings at half the interval: systemd restarts the unit when one gap exceeds WATCHDOG_USEC.
    await waitFor(() => sock!.with('WATCHDOG').length >= 5, { timeoutMs: 30_000, message: 'five WATCHDOG=1 pings' });
    const pings = sock.with('WATCHDOG');
    const gaps = pings.slice(1).map((p, i) => p.at - pings[i]!.at);
    assert.ok(
      gaps.every((g) => g < watchdogUsec / 1000),
      `every gap below WATCHDOG_USEC: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`,
    );
    await waitFor(() => sock!.messages.some((m) => /^running: 1 container declared$/.test(m.fields.get('STATUS') ?? '')), {
      timeoutMs: 10_000,
      message: 'STATUS=running: …',
    });

    const exit = await acetate.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    const stopping = await sock.next('STOPPING', 5_000);
    assert.match(stopping.fields.get('STATUS') ?? '', /^stopping/);
    assert.ok(stopping.index > ready.index);
    assert.equal(sock.messages.filter((m) => m.index > stopping.index && m.fields.has('WATCHDOG')).length, 0, 'no ping after STOPPING=1');
    assert.equal(sock.with('READY').length, 1, 'READY=1 once');
    // Every message from acetate's own pid: what NotifyAccess=main (the default) accepts.
    assert.deepEqual([...new Set(sock.messages.map((m) => m.pid))], [pid]);
    assert.ok(await runningPid('web'), 'the container keeps running after acetate stops');
  });

  it('takes an abstract socket (@name), and does not ping a watchdog that WATCHDOG_PID gives to another process', async () => {
    sock = await NotifySocket.open({ abstract: true });
    assert.match(sock.address, /^@/);
    acetate = new CliProcess(['run', '-f', dirs.dir, '--allow-empty', ...quickRunFlags()], {
      stateDir: dirs.stateDir,
      env: { NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' },
    });
    const ready = await sock.next('READY');
    assert.match(ready.fields.get('STATUS') ?? '', /^ready: 0 containers declared/);
    // The status line is refreshed every second: by the time it says "running", ten pings would have gone.
    await waitFor(() => sock!.messages.some((m) => /^running:/.test(m.fields.get('STATUS') ?? '')), { timeoutMs: 10_000, message: 'STATUS=running: …' });
    assert.equal(sock.with('WATCHDOG').length, 0);
    assert.deepEqual(await acetate.stop('SIGTERM'), { code: 0, signal: null });
    await sock.next('STOPPING', 5_000);
  });
});
