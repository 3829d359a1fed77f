/**
 * Probes through `acetate run` on real containers (network none: the checks run in the
 * container's own network namespace): readiness on an HTTP server flips Ready as it starts and
 * stops answering; a failing liveness probe restarts with the crash-loop back-off and logs the
 * probe's output; a hanging exec probe is killed at its timeout. Bad probe input names file, line
 * and field.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import net from 'node:net';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { describeRecord, readyCondition } from '../support/describe-record.js';
import { CliProcess } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';

const WEB = 'mkdir -p /tmp/www; echo ok > /tmp/www/index.html; while [ ! -e /tmp/serve ]; do sleep 0.1; done; exec busybox httpd -f -p 8080 -h /tmp/www';

describe('probes (acetate run, real containers)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let loop: CliProcess | undefined;

  const describeJson = (name: string) => describeRecord(name, { stateDir });
  const ready = async (name: string) => readyCondition(await describeJson(name));
  const exec = (name: string, ...cmd: string[]) => runCli(['exec', name, '--', ...cmd], { stateDir });

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
  });
  after(async () => {
    await loop?.stop();
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('bad probes are reported with file, line and field', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(
      bad,
      manifest('bad', {
        extra: `  readinessProbe:
    exec: { command: [/bin/true] }
    httpGet: { port: 8080 }
    periodSeconds: -1
  livenessProbe:
    tcpSocket: { port: 70000 }
    successThreshold: 2
`,
      }),
    );
    const r = await runCli(['validate', bad], { stateDir });
    await rm(bad);
    assert.equal(r.code, 1);
    const text = r.stdout + r.stderr;
    assert.match(text, new RegExp(`bad\\.yaml:17: spec\\.readinessProbe\\.httpGet: a probe has exactly one handler: exec and httpGet are both set`));
    assert.match(text, /bad\.yaml:18: spec\.readinessProbe\.periodSeconds: -1 must be at least 0/);
    assert.match(text, /bad\.yaml:20: spec\.livenessProbe\.tcpSocket\.port: 70000 must be at most 65535/);
    assert.match(text, /bad\.yaml:21: spec\.livenessProbe\.successThreshold: must be 1 for a liveness probe/);
  });

  it('readiness (httpGet) and startup (tcpSocket) drive Ready as the server starts and stops answering', async () => {
    await writeFile(
      path.join(dir, 'web.yaml'),
      manifest('web', {
        script: WEB,
        extra: `  startupProbe:
    tcpSocket: { port: 8080 }
    periodSeconds: 1
    failureThreshold: 600
  readinessProbe:
    httpGet: { path: /index.html, port: 8080 }
    periodSeconds: 1
    failureThreshold: 1
`,
      }),
    );
    await writeFile(
      path.join(dir, 'sick.yaml'),
      manifest('sick', {
        extra: `  livenessProbe:
    exec: { command: [sh, -c, 'echo no-heartbeat-file; exit 1'] }
    initialDelaySeconds: 1
    periodSeconds: 1
    failureThreshold: 1
`,
      }),
    );
    await writeFile(
      path.join(dir, 'hang.yaml'),
      manifest('hang', {
        extra: `  readinessProbe:
    exec: { command: [sleep, '1000'] }
    periodSeconds: 1
    timeoutSeconds: 1
`,
      }),
    );
    loop = new CliProcess(['run', '-f', dir, '--metrics-addr', '0', '--process-poll', '300ms', '--log-format', 'json'], {
      stateDir,
      env: { ACETATE_CRASHLOOP_BASE_MS: '1500', ACETATE_CRASHLOOP_MAX_MS: '60000' },
    });
    const notStarted = await waitFor(
      'web running, not ready',
      async () => {
        const c = await ready('web');
        return c?.status === 'False' && c.reason === 'StartupProbe' ? c : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.match(notStarted.message ?? '', /startup probe has not succeeded yet/);
    assert.equal((await describeJson('web')).actual?.state, 'running');
    assert.equal((await exec('web', 'touch', '/tmp/serve')).code, 0);
    await waitFor('web Ready', async () => (await ready('web'))?.status === 'True', { timeoutMs: 15_000 });
    assert.equal((await exec('web', 'rm', '/tmp/www/index.html')).code, 0);
    const c = await waitFor(
      'web not ready',
      async () => {
        const r = await ready('web');
        return r?.status === 'False' ? r : undefined;
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(c.reason, 'ReadinessProbe');
    assert.match(c.message ?? '', /404/);
    assert.equal((await exec('web', 'sh', '-c', 'echo ok > /tmp/www/index.html')).code, 0);
    await waitFor('web Ready again', async () => (await ready('web'))?.status === 'True', { timeoutMs: 15_000 });
  });

  it('a failing liveness probe is a kill of the plan: restarted with the crash-loop back-off, logging its output', async () => {
    const rec = await waitFor(
      'two restarts',
      async () => {
        const r = await describeJson('sick');
        return r.status.restartCount !== undefined && r.status.restartCount >= 2 ? r : undefined;
      },
      { timeoutMs: 40_000 },
    );
    // What `acetate describe` shows: each kill is an action of the loop, with the probe's words
    // and the pid it was about; restartPolicy then started a new process each time.
    const kills = rec.recentActions.filter((a) => a.kind === 'kill');
    assert.ok(kills.length >= 2, `kills among the recent actions: ${JSON.stringify(rec.recentActions)}`);
    for (const k of kills) {
      assert.equal(k.outcome, 'killed');
      assert.match(k.reason ?? '', /^Liveness probe failed 1 times: no-heartbeat-file \(pid \d+\); restartPolicy Always decides the restart$/);
    }
    const killedPids = kills.map((k) => Number(/\(pid (\d+)\)/.exec(k.reason!)![1]));
    assert.equal(new Set(killedPids).size, killedPids.length, `each kill is of another process: ${killedPids.join(', ')}`);
    const after = rec.recentActions.slice(rec.recentActions.indexOf(kills[0]!) + 1);
    assert.match(after.find((a) => a.kind === 'start')?.reason ?? '', /^process exited with code \d+; restartPolicy Always$/, 'restarted per restartPolicy');
    const text = await runCli(['describe', 'sick'], { stateDir });
    assert.match(text.stdout, /kill +killed +\S+ +Liveness probe failed 1 times: no-heartbeat-file \(pid \d+\)/);
    const lines = `${loop!.stdout}\n${loop!.stderr}`.split('\n').filter((l) => l.includes('default/sick'));
    const logged = lines.filter((l) => /Liveness probe failed 1 times: no-heartbeat-file; killed pid \d+/.test(l));
    assert.ok(logged.length >= 2, "the probe's output is in the log of each kill");
    const backoffs = lines
      .filter((l) => /back-off \d+(\.\d+)?s restarting failed container/.test(l))
      .map((l) => Number(/back-off (\d+(?:\.\d+)?)s/.exec(l)![1]));
    assert.ok(backoffs.length >= 2, `back-offs: ${backoffs.join(', ')}`);
    assert.ok(backoffs[1]! > backoffs[0]!, `the back-off grows: ${backoffs.join(', ')}`);
  });

  it('a hanging exec probe is killed at its timeout: Ready False, no pile of hung probes', async () => {
    const c = await waitFor(
      'hang not ready, timed out',
      async () => {
        const r = await ready('hang');
        return r?.status === 'False' && /timed out after 1s/.test(r.message ?? '') ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.equal(c.reason, 'ReadinessProbe');
    // The probes' `sleep 1000` processes, seen from the host: each one ends at its timeout.
    const seen = new Set<number>();
    const hung = async (): Promise<number[]> => {
      const pids: number[] = [];
      for (const e of await readdir('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
        const cg = await readFile(`/proc/${e}/cgroup`, 'utf8').catch(() => '');
        if (cmd === 'sleep\u00001000\u0000' && cg.includes('default_hang')) pids.push(Number(e));
      }
      return pids;
    };
    await waitFor(
      'three probe processes come and go',
      async () => {
        const now = await hung();
        now.forEach((p) => seen.add(p));
        assert.ok(now.length <= 1, `${now.length} hung probes at once`);
        return seen.size >= 3;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  });

  it("on the node's network (network: host) the checks connect directly: Ready once the server answers", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    await writeFile(
      path.join(dir, 'hostweb.yaml'),
      manifest('hostweb', {
        command: ['busybox', 'httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/usr/share/doc'],
        extra: `  network: host
  securityContext: { hostUsers: true }
  readinessProbe:
    httpGet: { path: /runc/copyright, port: ${port} }
    periodSeconds: 1
  livenessProbe:
    tcpSocket: { port: ${port} }
    periodSeconds: 1
`,
      }),
    );
    const c = await waitFor(
      'hostweb Ready',
      async () => {
        const r = await ready('hostweb');
        return r?.status === 'True' ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.match(c.message ?? '', /readiness probe succeeded/);
    assert.equal((await describeJson('hostweb')).status.restartCount, 0, 'the liveness probe passes');
    await rm(path.join(dir, 'hostweb.yaml'));
  });

  it('the loop is done with them when the containers go', async () => {
    for (const f of ['web.yaml', 'sick.yaml', 'hang.yaml']) await rm(path.join(dir, f));
    await writeFile(path.join(dir, 'keep.yaml'), manifest('keep', { state: 'Stopped' }));
    await waitFor(
      'web, sick and hang destroyed',
      async () => {
        const r = await runCli(['get', '-o', 'json'], { stateDir });
        return (JSON.parse(r.stdout) as { items: unknown[] }).items.length === 1;
      },
      { timeoutMs: 20_000 },
    );
  });
});
