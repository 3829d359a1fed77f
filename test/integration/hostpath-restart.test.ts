/**
 * A hostPath checked at admission is checked again at every start (walls/hostpath-open.ts): under
 * `run` (restartPolicy Always, the built-in level baseline, one allowed dir), a Container mounts a
 * dir inside the allowed one; someone on the node swaps that dir for a symlink to a "sensitive"
 * dir outside the allowlist and the container's process is killed. The restart is refused: the
 * container is not started again (so nothing of the sensitive dir is seen from inside), its
 * Synced condition and a Failed event name the container, the field and the rule, and the
 * container is kept: once the dir is put back, it runs again with the allowed dir bound.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot, type CliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { flatContainers } from '../support/get.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';

const WAIT = { timeoutMs: 90_000, intervalMs: 200 };

describe('hostPath re-checked at every start (run, restart after a symlink swap)', function () {
  this.timeout(300_000);
  let r: CliRoot;
  let loop: CliProcess | undefined;
  let allowed: string;
  let data: string;
  let sensitive: string;
  let victim: string;
  let other: { stateDir: string; runDir: string };
  // The second allowed dir holds another acetate instance (finding 6b): allowed by the setting, refused as acetate's.
  const setting = (): string => `default=baseline,allow-host-path=${allowed},allow-host-path=${path.dirname(other.stateDir)}`;
  // ACETATE_HOST_USERS empty: the project's default (a user namespace), which baseline requires.
  // Retries of a refused start at most 4 s apart: the dir put back is used within the test's wait.
  const env = () => ({ ACETATE_RUN_DIR: r.runDir, ACETATE_POD_SECURITY: setting(), ACETATE_HOST_USERS: '', ACETATE_BACKOFF_MAX_MS: '4000' });
  const cli = (args: string[]) => runCli(args, { stateDir: r.stateDir, env: env() });
  const get = async () => flatContainers((await cli(['get', '-n', 'tenant-a', 'web', '-o', 'json'])).stdout || '{"kind":"List","items":[]}')[0];
  /** The container once it runs (one `get` per check). */
  const running = (what: string) =>
    waitFor(
      async () => {
        const c = await get();
        return c?.phase === 'Running' ? c : undefined;
      },
      { ...WAIT, what },
    );

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'hostPath re-check at start (real runc containers)');
    r = await makeCliRoot('acetate-hostpath-start-');
    const base = path.dirname(r.stateDir);
    await chmod(base, 0o711); // the container's range root crosses the test's dir
    allowed = path.join(base, 'allowed');
    data = path.join(allowed, 'data');
    sensitive = path.join(base, 'sensitive');
    await mkdir(data, { recursive: true, mode: 0o755 });
    await mkdir(sensitive, { mode: 0o755 });
    await chmod(allowed, 0o755);
    await writeFile(path.join(data, 'ok.txt'), 'allowed\n', { mode: 0o644 });
    // Readable by anyone: if it were bound, the container would read it.
    await writeFile(path.join(sensitive, 'secret.txt'), 'SENSITIVE-MARKER\n', { mode: 0o644 });
    // A "victim" dir with a data dir of its own, for the swap of the allowed dir itself.
    victim = path.join(base, 'victim');
    await mkdir(path.join(victim, 'data'), { recursive: true, mode: 0o755 });
    await writeFile(path.join(victim, 'data', 'secret.txt'), 'VICTIM-MARKER\n', { mode: 0o644 });
    other = { stateDir: path.join(base, 'other', 'state'), runDir: path.join(base, 'other', 'run') };
    await writeFile(
      path.join(r.dir, 'web.yaml'),
      [
        'apiVersion: acetate.dev/v1alpha1',
        'kind: Container',
        'metadata: { name: web, namespace: tenant-a }',
        'spec:',
        '  template: host',
        '  command: [/bin/sh, -c, exec sleep 100000]',
        '  restartPolicy: Always',
        '  terminationGracePeriodSeconds: 1',
        '  securityContext: { hostUsers: false }',
        '  mounts:',
        `    - { hostPath: ${data}, containerPath: /data, readOnly: true }`,
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    await loop?.stop();
    if (r) {
      // Put the dir back whatever the test left, so the final apply can remove the container.
      await rm(data, { force: true }).catch(() => undefined);
      await rename(`${data}.moved`, data).catch(() => undefined);
      await rm(allowed, { force: true }).catch(() => undefined);
      await rename(`${allowed}.orig`, allowed).catch(() => undefined);
      await destroyAllAndAssertNoLeaks({ ...r, apply: () => cli(['apply', '-f', r.dir, '--allow-empty']) });
    }
  });

  it('a restart after the allowed dir became a symlink to a dir outside the allowlist is refused, named, and the container kept', async () => {
    // No periodic re-read of the manifests during the test: one that came between a swap and the kill
    // would refuse the manifest itself (Forbidden, the container held) before the start is tried,
    // and the start-time check is what these tests are about.
    loop = new CliProcess(['run', '-f', r.dir, ...quickRunFlags({ relist: '30m' })], { stateDir: r.stateDir, env: env() });
    const first = await running('web running');
    const seen = await cli(['exec', '-n', 'tenant-a', 'web', '--', 'cat', '/data/ok.txt']);
    assert.equal(seen.stdout, 'allowed\n', `the allowed dir is bound: ${seen.stderr}`);

    // On the node: the allowed dir is swapped for a symlink to the sensitive one, then the process dies.
    await rename(data, `${data}.moved`);
    await symlink(sensitive, data);
    process.kill(first.pid!, 'SIGKILL');

    const refused = await waitFor(
      async () => {
        const c = await get();
        return c?.conditions.find((x) => x.type === 'Synced' && x.reason === 'HostPathRefused') ? c : undefined;
      },
      { ...WAIT, what: 'Synced=False HostPathRefused' },
    );
    const synced = refused.conditions.find((x) => x.type === 'Synced')!;
    assert.equal(synced.status, 'False');
    for (const part of ['tenant-a/web', 'spec.mounts[0].hostPath', 'rule hostPathVolumes', sensitive])
      assert.ok(synced.message!.includes(part), `the condition names ${part}: ${synced.message}`);
    assert.notEqual(refused.phase, 'Running', 'not started again with the symlinked dir');
    const d = await cli(['describe', '-n', 'tenant-a', 'web']);
    assert.match(d.stdout, /Synced +False +HostPathRefused .*tenant-a\/web: spec\.mounts\[0\]\.hostPath: .*rule hostPathVolumes/, d.stdout);
    assert.match(d.stdout, /start +error .*restartPolicy Always: tenant-a\/web: spec\.mounts\[0\]\.hostPath/, d.stdout);
    assert.match(d.stdout, /Process: +absent/);
    // The Failed event (the log line `run` writes for it), and a retry later: still refused.
    await waitFor(() => loop!.lines.filter((l) => /rule hostPathVolumes/.test(JSON.stringify(l))).length >= 2, {
      ...WAIT,
      what: 'the refusal logged, and again at a retry',
    });
    const inside = await cli(['exec', '-n', 'tenant-a', 'web', '--', 'cat', '/data/secret.txt']);
    assert.notEqual(inside.code, 0);
    assert.doesNotMatch(inside.stdout, /SENSITIVE-MARKER/);
    assert.notEqual((await get())?.phase, 'Running');

    // The container was kept: with the dir back, the next retry starts it, the allowed dir bound.
    await rm(data);
    await rename(`${data}.moved`, data);
    const again = await running('web running again');
    assert.notEqual(again.pid, first.pid);
    assert.equal((await cli(['exec', '-n', 'tenant-a', 'web', '--', 'cat', '/data/ok.txt'])).stdout, 'allowed\n');
  });

  it('a restart after the ALLOWED dir itself became a symlink to a victim dir is refused: the entry is not followed where it leads now (finding 7)', async () => {
    const before = await running('web running');
    await rename(allowed, `${allowed}.orig`);
    await symlink(victim, allowed);
    process.kill(before.pid!, 'SIGKILL');
    const refused = await waitFor(
      async () => {
        const c = await get();
        return c?.conditions.find((x) => x.type === 'Synced' && x.reason === 'HostPathRefused' && x.message?.includes(victim)) ? c : undefined;
      },
      { ...WAIT, what: 'Synced=False HostPathRefused naming the victim dir' },
    );
    const synced = refused.conditions.find((x) => x.type === 'Synced')!;
    for (const part of ['tenant-a/web', 'spec.mounts[0].hostPath', 'rule hostPathVolumes', `${allowed} now leads to ${victim}, not followed`])
      assert.ok(synced.message!.includes(part), `the condition names ${part}: ${synced.message}`);
    assert.notEqual(refused.phase, 'Running');
    const inside = await cli(['exec', '-n', 'tenant-a', 'web', '--', 'cat', '/data/secret.txt']);
    assert.notEqual(inside.code, 0);
    assert.doesNotMatch(inside.stdout, /VICTIM-MARKER/);

    await rm(allowed);
    await rename(`${allowed}.orig`, allowed);
    await running('web running again');
    assert.equal((await cli(['exec', '-n', 'tenant-a', 'web', '--', 'cat', '/data/ok.txt'])).stdout, 'allowed\n');
  });

  it("a hostPath into another acetate instance's state dir is refused though the allowlist covers it (finding 6b)", async () => {
    // A real second instance: its apply takes its node lock and registers it node-wide.
    const empty = path.join(path.dirname(other.stateDir), 'manifests');
    await mkdir(empty, { recursive: true });
    const o = await runCli(['apply', '-f', empty, '--allow-empty'], {
      stateDir: other.stateDir,
      env: { ACETATE_RUN_DIR: other.runDir, ACETATE_HOST_USERS: '' },
    });
    assert.equal(o.code, 0, o.stderr);
    const upper = path.join(other.stateDir, 'containers', 'default_ta', 'upper');
    await mkdir(path.join(upper, 'srv'), { recursive: true });
    await writeFile(path.join(upper, 'srv', 'app.conf'), 'OTHER-INSTANCE\n', { mode: 0o644 });
    await writeFile(
      path.join(r.dir, 'peek.yaml'),
      [
        'apiVersion: acetate.dev/v1alpha1',
        'kind: Container',
        'metadata: { name: peek, namespace: tenant-a }',
        'spec:',
        '  template: host',
        '  command: [/bin/sh, -c, exec sleep 100000]',
        '  securityContext: { hostUsers: false }',
        '  mounts:',
        `    - { hostPath: ${upper}, containerPath: /other, readOnly: true }`,
        '',
      ].join('\n'),
    );
    // Refused at its create (never created, so `get` lists nothing): the run's Failed line names the dir and why.
    const line = await waitFor(
      () =>
        loop!.lines.find((l) => {
          const x = l as { action?: string; container?: string; error?: string };
          return x.action === 'create' && x.container === 'tenant-a/peek' && x.error?.includes(other.stateDir);
        }) as { error: string } | undefined,
      { ...WAIT, what: "peek's create refused naming the other instance's state dir" },
    );
    assert.match(line.error, /is inside acetate's state dir of an instance on this node \(registered in \/var\/lib\/acetate\/instances\)/, line.error);
    const listed = flatContainers((await cli(['get', '-n', 'tenant-a', 'peek', '-o', 'json'])).stdout || '{"kind":"List","items":[]}')[0];
    assert.notEqual(listed?.phase, 'Running');
    const inside = await cli(['exec', '-n', 'tenant-a', 'peek', '--', 'cat', '/other/srv/app.conf']);
    assert.notEqual(inside.code, 0);
    assert.doesNotMatch(inside.stdout, /OTHER-INSTANCE/);
    await rm(path.join(r.dir, 'peek.yaml'));
  });
});
