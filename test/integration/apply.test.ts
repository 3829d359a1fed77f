/**
 * `acetate apply` end to end, as a user runs it: the real CLI as a child process, real runc
 * containers, a temporary state dir. Checks what a user would check on the host.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile, unlink, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { runCli, NODE_IDS_BY_DEFAULT } from '../support/cli.js';
import { cgroupValue, isAlive } from '../support/proc.js';
import { cliDirs, type CliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { CLI } from '../support/cli.js';
import { manifest as baseManifest, type ManifestOptions } from '../support/manifest.js';
import { flatContainers } from '../support/get.js';

/** A container that says hello (checked in its log), then sleeps. */
function manifest(name: string, o: ManifestOptions = {}): string {
  return baseManifest(name, { script: `echo hello from ${name}; exec sleep 100000`, grace: 2, ...o });
}

const MI = 1024 * 1024;

interface Got {
  name: string;
  phase: string;
  pid?: number;
  restarts: number;
  actual: { cpu: string; memory: string } | null;
}

describe('acetate apply (real runc)', function () {
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;

  const apply = (...extra: string[]) => runCli(['apply', '-f', dir, ...extra], { stateDir });
  const get = async (): Promise<Got[]> => {
    const r = await runCli(['get', '-o', 'json'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    return flatContainers(r.stdout);
  };
  const one = async (name: string): Promise<Got> => {
    const c = (await get()).find((x) => x.name === name);
    assert.ok(c, `${name} not listed`);
    return c;
  };

  beforeEach(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
  });

  afterEach(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('creates a running container, then does nothing the second time', async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
    const first = await apply();
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /\+ create\s+default\/web/);
    assert.match(first.stdout, /Apply complete: 1 created/);
    const c = await one('web');
    assert.equal(c.phase, 'Running');
    assert.ok(c.pid && isAlive(c.pid), 'process is running');
    assert.equal(await cgroupValue(c.pid!, 'memory', 'memory.limit_in_bytes'), String(64 * MI));
    assert.equal(await cgroupValue(c.pid!, 'cpu', 'cpu.cfs_quota_us'), '50000');
    assert.equal(await cgroupValue(c.pid!, 'pids', 'pids.max'), '64');
    await waitFor(async () => (await runCli(['logs', 'web'], { stateDir })).stdout.includes('hello from web'), { what: 'log line' });

    const second = await apply();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /No changes\. 1 container\(s\) converged/);
    assert.equal((await one('web')).pid, c.pid);
    const plan = await runCli(['plan', '-f', dir], { stateDir });
    assert.equal(plan.code, 0, 'plan exits 0 when converged');
  });

  it('resizes memory and cpu in place: same pid, new cgroup limits', async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
    assert.equal((await apply()).code, 0);
    const before = await one('web');
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { memory: '128Mi', cpu: '1500m' }));
    const plan = await runCli(['plan', '-f', dir], { stateDir });
    assert.equal(plan.code, 2, 'plan exits 2 when there are changes');
    assert.match(plan.stdout, /~ resize\s+default\/web\s+cpu 500m → 1500m, memory 64Mi → 128Mi \(in place\)/);
    const r = await apply();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /resized default\/web/);
    const after = await one('web');
    assert.equal(after.pid, before.pid, 'same process');
    assert.equal(await cgroupValue(after.pid!, 'memory', 'memory.limit_in_bytes'), String(128 * MI));
    assert.equal(await cgroupValue(after.pid!, 'cpu', 'cpu.cfs_quota_us'), '150000');
    assert.deepEqual(after.actual, { cpu: '1500m', memory: '128Mi', pids: 64 });
    assert.match((await apply()).stdout, /No changes/);
  });

  it('replaces on a command change and keeps the private area', async () => {
    await writeFile(path.join(dir, 'w.yaml'), manifest('w', { command: ['/bin/sh', '-c', 'echo kept > /root-note; exec sleep 100000'] }));
    assert.equal((await apply()).code, 0);
    const before = await one('w');
    await waitFor(async () => (await stat(path.join(stateDir, 'containers', 'default_w', 'upper', 'root-note')).catch(() => undefined)) !== undefined, {
      what: 'file in private area',
    });
    await writeFile(path.join(dir, 'w.yaml'), manifest('w', { command: ['/bin/sh', '-c', 'cat /root-note; exec sleep 100001'] }));
    const plan = await runCli(['plan', '-f', dir], { stateDir });
    assert.match(plan.stdout, /-\/\+ replace\s+default\/w\s+command changed: cannot change in place \(private area kept\)/);
    const r = await apply();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /replaced default\/w/);
    const after = await one('w');
    assert.notEqual(after.pid, before.pid);
    assert.ok(!isAlive(before.pid!), 'old process gone');
    await waitFor(async () => (await runCli(['logs', 'w'], { stateDir })).stdout.includes('kept'), {
      what: 'new process reads the file kept in the private area',
    });
  });

  it('destroys a container whose manifest was removed, with all its mounts, cgroups and dirs', async () => {
    await writeFile(path.join(dir, 'a.yaml'), manifest('a'));
    await writeFile(path.join(dir, 'b.yaml'), manifest('b'));
    assert.equal((await apply()).code, 0);
    const a = await one('a');
    await unlink(path.join(dir, 'a.yaml'));
    const r = await apply();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /- destroy\s+default\/a\s+no longer declared/);
    assert.deepEqual(
      (await get()).map((c) => c.name),
      ['b'],
    );
    assert.ok(!isAlive(a.pid!));
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(path.join(stateDir, 'containers', 'default_a')), 'overlay unmounted');
    await assert.rejects(stat(path.join(stateDir, 'containers', 'default_a')), 'container dir deleted');
  });

  it('reports a broken file and leaves its container exactly as it is', async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
    await writeFile(path.join(dir, 'other.yaml'), manifest('other'));
    assert.equal((await apply()).code, 0);
    const before = await one('web');
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { memory: '12 GB' }));
    const r = await apply();
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${dir}/web\\.yaml:13: spec\\.resources\\.memory: '12 GB' is not a quantity such as 512Mi`));
    const after = await one('web');
    assert.equal(after.pid, before.pid);
    assert.equal(await cgroupValue(after.pid!, 'memory', 'memory.limit_in_bytes'), String(64 * MI));
    // now the YAML itself breaks: still untouched
    await writeFile(path.join(dir, 'web.yaml'), 'apiVersion: [\n');
    const r2 = await apply();
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /web\.yaml:\d+: YAML syntax error/);
    assert.equal((await one('web')).pid, before.pid);
  });

  it('destroys nothing when the directory is missing or empty unless --allow-empty', async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web'));
    assert.equal((await apply()).code, 0);
    await unlink(path.join(dir, 'web.yaml'));
    const r = await apply();
    assert.match(r.stderr, /no manifest files in .*; nothing will be destroyed \(use --allow-empty to allow it\)/);
    assert.equal((await get()).length, 1);
    const gone = await runCli(['apply', '-f', path.join(dir, 'missing')], { stateDir });
    assert.equal(gone.code, 1);
    assert.equal((await get()).length, 1);
    const allowed = await apply('--allow-empty');
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal((await get()).length, 0);
  });

  it('finishes an apply that was SIGKILLed midway: converged, nothing duplicated or leaked', async () => {
    const names = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'];
    for (const n of names) await writeFile(path.join(dir, `${n}.yaml`), manifest(n));
    const child = spawn(process.execPath, [CLI, '--state-dir', stateDir, 'apply', '-f', dir, '--concurrency', '3'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...NODE_IDS_BY_DEFAULT, ...process.env },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor(() => /✓ created/.test(out), { what: 'first container created', timeoutMs: 60_000 });
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    const r = await apply();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const got = await get();
    assert.deepEqual(got.map((c) => c.name).sort(), names);
    for (const c of got) assert.ok(c.pid && isAlive(c.pid), `${c.name} running`);
    assert.match((await apply()).stdout, /No changes\. 6 container/);
  });
});
