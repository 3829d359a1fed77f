/**
 * The sd_notify sender (src/observability/sd-notify.ts) against a real unix datagram socket and
 * the real systemd-notify: which environment it takes (and removes), and that the watchdog goes
 * quiet while the health it is fed says unhealthy, so systemd restarts the unit.
 */
import assert from 'node:assert/strict';
import { SystemdNotifier, takeNotifySettings } from '../../src/observability/sd-notify.js';
import { NotifySocket } from '../support/notify-socket.js';
import { waitFor } from '../support/wait.js';

describe('sd_notify settings from the environment', () => {
  it('takes NOTIFY_SOCKET and WATCHDOG_USEC, and removes them and WATCHDOG_PID so no child inherits them', () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42', PATH: '/bin' };
    assert.deepEqual(takeNotifySettings(env, 42), { socket: '/run/systemd/notify', watchdogUsec: 30_000_000 });
    assert.deepEqual(env, { PATH: '/bin' });
  });

  it('no watchdog when WATCHDOG_PID names another process, or WATCHDOG_USEC is not a positive number', () => {
    assert.deepEqual(takeNotifySettings({ NOTIFY_SOCKET: '@sock', WATCHDOG_USEC: '1000', WATCHDOG_PID: '7' }, 42), { socket: '@sock' });
    assert.deepEqual(takeNotifySettings({ NOTIFY_SOCKET: '@sock', WATCHDOG_USEC: 'x' }, 42), { socket: '@sock' });
    assert.deepEqual(takeNotifySettings({ NOTIFY_SOCKET: '@sock', WATCHDOG_USEC: '0' }, 42), { socket: '@sock' });
  });

  it('nothing to notify without a socket, or with a relative one (sd_notify(3) takes only "/..." and "@...")', () => {
    assert.equal(takeNotifySettings({}, 1), undefined);
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: 'notify.sock', WATCHDOG_USEC: '1000' };
    assert.equal(takeNotifySettings(env, 1), undefined);
    assert.deepEqual(env, {});
  });
});

describe('SystemdNotifier (real systemd-notify, real socket)', function () {
  this.timeout(30_000);
  let sock: NotifySocket;
  let notifier: SystemdNotifier | undefined;
  beforeEach(async () => {
    sock = await NotifySocket.open({ abstract: true });
  });
  afterEach(async () => {
    await notifier?.stopping('done');
    await sock.close();
  });

  it('stops pinging while unhealthy (told once), and starts again when healthy', async () => {
    let healthy = true;
    let asked = 0; // watchdog ticks that found the loop unhealthy
    const errors: string[] = [];
    const health = () => {
      if (!healthy) asked++;
      return healthy;
    };
    notifier = new SystemdNotifier({ settings: { socket: sock.address, watchdogUsec: 200_000 }, healthy: health, onError: (m) => errors.push(m) });
    assert.equal(notifier.watchdogMs, 100);
    notifier.startWatchdog();
    await waitFor(() => sock.with('WATCHDOG').length >= 3, { message: 'three pings' });
    healthy = false;
    await notifier.flush();
    // flush() waits for systemd-notify --no-block to exit, not for the socket's reader to have
    // the message: a STATUS sent now arrives after the last ping, so the count is taken behind it.
    await notifier.status('unhealthy');
    await waitFor(() => sock.with('STATUS').length >= 1, { message: 'the first status' });
    const before = sock.with('WATCHDOG').length;
    // Five ticks that found it unhealthy (systemd would have restarted the unit after two), then a
    // message behind any ping they could have queued: none came.
    await waitFor(() => asked >= 5, { message: 'five unhealthy ticks' });
    await notifier.status('checking');
    await waitFor(() => sock.with('STATUS').length >= 2, { message: 'the second status' });
    assert.equal(sock.with('WATCHDOG').length, before);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /not healthy.*\/healthz/);
    healthy = true;
    await waitFor(() => sock.with('WATCHDOG').length >= before + 2, { message: 'pings again' });
  });

  it('keeps a STATUS= on one line (a newline would start another variable) and sends each status once', async () => {
    notifier = new SystemdNotifier({ settings: { socket: sock.address }, healthy: () => true, onError: () => undefined });
    await notifier.status('a\nREADY=1');
    await notifier.status('a\nREADY=1');
    await notifier.status('b');
    await waitFor(() => sock.with('STATUS').length >= 2, { message: 'two statuses' });
    assert.deepEqual(
      sock.with('STATUS').map((m) => m.fields.get('STATUS')),
      ['a READY=1', 'b'],
    );
    assert.equal(sock.with('READY').length, 0);
  });

  it('a sender that cannot run is told once, not at every message', async () => {
    const errors: string[] = [];
    notifier = new SystemdNotifier({
      settings: { socket: sock.address },
      healthy: () => true,
      onError: (m) => errors.push(m),
      command: '/nonexistent/systemd-notify',
    });
    await notifier.ready('r');
    await notifier.status('s');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /cannot notify systemd \(READY, STATUS\)/);
  });
});
