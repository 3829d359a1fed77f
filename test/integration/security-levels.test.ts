/**
 * Security levels in file mode, through the CLI as a user runs it (real runc containers): under
 * the built-in default (baseline) a Container mounting the node's /etc, adding SYS_ADMIN or
 * joining the host network is refused by `validate` and `plan` with file, line, field and rule,
 * and never created by `run` (Synced=False reason Forbidden in `get` and `describe`, a log line);
 * a namespace set privileged on the node runs it; a running Container that its namespace's new
 * level refuses is held (same process), not destroyed.
 */
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot, type CliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { flatContainers } from '../support/get.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';

const WAIT = { timeoutMs: 60_000, intervalMs: 200 };

function container(name: string, namespace: string, extra: string[]): string {
  return [
    'apiVersion: acetate.dev/v1alpha1',
    'kind: Container',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    'spec:',
    '  template: host',
    '  command: [/bin/sh, -c, exec sleep 100000]',
    '  terminationGracePeriodSeconds: 1',
    ...extra,
    '',
  ].join('\n');
}

/** Each refused Container: its file, the field's line in it, the field and the rule. */
const BAD = {
  etc: { extra: ['  mounts:', '    - hostPath: /etc', '      containerPath: /node-etc'], line: 11, field: 'spec.mounts[0].hostPath', rule: 'hostPathVolumes' },
  sysadmin: {
    extra: ['  securityContext:', '    capabilities:', '      add: [SYS_ADMIN]'],
    line: 12,
    field: 'spec.securityContext.capabilities.add[0]',
    rule: 'capabilities_baseline',
  },
  // network: host needs hostUsers: true written (validation), itself refused by baseline too.
  hostnet: { extra: ['  network: host', '  securityContext:', '    hostUsers: true'], line: 10, field: 'spec.network', rule: 'hostNamespaces' },
};

describe('security levels in file mode (CLI, real containers)', function () {
  this.timeout(300_000);
  let r: CliRoot;
  let loop: CliProcess | undefined;
  // ACETATE_HOST_USERS empty: the project's default (a user namespace), not the harness's node ids.
  const env = (setting: string | undefined) => ({ ACETATE_RUN_DIR: r.runDir, ACETATE_POD_SECURITY: setting ?? '', ACETATE_HOST_USERS: '' });
  const cli = (args: string[], setting?: string) => runCli(args, { stateDir: r.stateDir, env: env(setting) });

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'security levels (real runc containers)');
    r = await makeCliRoot('acetate-levels-');
    // The containers run in user namespaces (the project's default): their root crosses the test's dir.
    await chmod(path.dirname(r.stateDir), 0o711);
    for (const [name, b] of Object.entries(BAD)) await writeFile(path.join(r.dir, `${name}.yaml`), container(name, 'tenant-a', b.extra));
  });

  after(async () => {
    await loop?.stop();
    if (r) await destroyAllAndAssertNoLeaks({ ...r, apply: () => cli(['apply', '-f', r.dir, '--allow-empty'], 'default=privileged') });
  });

  it('validate and plan refuse them under the built-in default (baseline), naming file, line, field and rule', async () => {
    for (const args of [
      ['validate', r.dir],
      ['plan', '-f', r.dir],
    ]) {
      const out = await cli(args); // ACETATE_POD_SECURITY empty: the built-in default (no /etc/acetate/pod-security.yaml here)
      for (const [name, b] of Object.entries(BAD)) {
        const where = `${path.join(r.dir, `${name}.yaml`)}:${b.line}: ${b.field}: forbidden by security level baseline (rule ${b.rule})`;
        assert.ok(out.stderr.includes(where), `${args[0]} names ${where}\n${out.stderr}`);
      }
      assert.match(out.stderr, /namespace tenant-a: built-in default/);
      if (args[0] === 'validate') assert.equal(out.code, 1);
      else assert.doesNotMatch(out.stdout, /\+ create/, 'plan creates nothing');
    }
  });

  it('a namespace set privileged on the node plans and runs them', async () => {
    const out = await cli(['plan', '-f', r.dir], 'default=baseline,tenant-a=privileged');
    for (const name of Object.keys(BAD)) assert.match(out.stdout, new RegExp(`create.*tenant-a/${name}`));
    assert.doesNotMatch(out.stderr, /forbidden/);
  });

  it('run: refused ones are not created (Synced=False Forbidden in get and describe, a log line); after a relevel the running one is held, same process', async () => {
    // Privileged first: sysadmin runs.
    await writeFile(path.join(r.dir, 'etc.yaml'), '');
    await writeFile(path.join(r.dir, 'hostnet.yaml'), '');
    loop = new CliProcess(['run', '-f', r.dir, ...quickRunFlags()], { stateDir: r.stateDir, env: env('tenant-a=privileged') });
    const first = await waitFor(
      async () =>
        flatContainers((await cli(['get', '-n', 'tenant-a', 'sysadmin', '-o', 'json'])).stdout || '{"kind":"List","items":[]}').find(
          (c) => c.phase === 'Running',
        ),
      { ...WAIT, what: 'sysadmin running under privileged' },
    );
    await loop.stop();
    // Then the node's setting makes tenant-a baseline (the default), and etc and hostnet come back.
    for (const name of ['etc', 'hostnet'] as const) await writeFile(path.join(r.dir, `${name}.yaml`), container(name, 'tenant-a', BAD[name].extra));
    loop = new CliProcess(['run', '-f', r.dir, ...quickRunFlags()], { stateDir: r.stateDir, env: env('default=baseline') });
    const held = await waitFor(
      async () => {
        const got = (await cli(['get', '-n', 'tenant-a', 'sysadmin', '-o', 'json'])).stdout;
        const c = got ? flatContainers(got)[0] : undefined;
        return c?.conditions.find((x) => x.type === 'Synced' && x.reason === 'Forbidden') ? c : undefined;
      },
      { ...WAIT, what: 'sysadmin Forbidden under baseline' },
    );
    assert.equal(held.phase, 'Running');
    assert.equal(held.pid, first.pid, 'the same process: held, not restarted or destroyed');
    const syncedHeld = held.conditions.find((x) => x.type === 'Synced')!;
    assert.match(syncedHeld.message!, /rule capabilities_baseline/);
    assert.match(syncedHeld.message!, /held as it is/);
    const d = await cli(['describe', '-n', 'tenant-a', 'etc']);
    assert.match(d.stdout + d.stderr, /forbidden.*spec\.mounts\[0\]\.hostPath: forbidden by security level baseline \(rule hostPathVolumes\)/);
    await waitFor(() => loop!.logged(/hostnet\.yaml:10.*spec\.network.*rule hostNamespaces/), { ...WAIT, what: 'the log line of the hostnet refusal' });
    const all = flatContainers((await cli(['get', '-o', 'json'])).stdout);
    assert.deepEqual(
      all.filter((c) => c.phase === 'Running').map((c) => c.name),
      ['sysadmin'],
      'etc and hostnet were never created',
    );
  });

  it('runAsUser sets the process uid and gid (node view); runAsNonRoot with uid 0 is refused at create, naming the field', async () => {
    await loop?.stop();
    loop = undefined;
    for (const name of Object.keys(BAD)) await writeFile(path.join(r.dir, `${name}.yaml`), '');
    await writeFile(
      path.join(r.dir, 'nonroot.yaml'),
      container('nonroot', 'tenant-a', ['  securityContext:', '    runAsUser: 1000', '    runAsGroup: 1001', '    runAsNonRoot: true']),
    );
    const ok = await cli(['apply', '-f', r.dir, '--allow-empty'], 'default=privileged');
    assert.equal(ok.code, 0, ok.stderr);
    const c = flatContainers((await cli(['get', '-n', 'tenant-a', 'nonroot', '-o', 'json'])).stdout)[0]!;
    const status = await readFile(`/proc/${c.pid}/status`, 'utf8');
    // In its user namespace (the default): uid 1000 of the container is its range's first id + 1000 on the node.
    const base = Number(/^\s*0\s+(\d+)\s+65536/m.exec(await readFile(`/proc/${c.pid}/uid_map`, 'utf8'))![1]);
    assert.ok(base >= 65536, 'a range of node ids');
    const [u, g] = [base + 1000, base + 1001];
    assert.match(status, new RegExp(`^Uid:\\s+${u}\\s+${u}\\s+${u}\\s+${u}$`, 'm'));
    assert.match(status, new RegExp(`^Gid:\\s+${g}\\s+${g}\\s+${g}\\s+${g}$`, 'm'));
    await writeFile(path.join(r.dir, 'root.yaml'), container('root', 'tenant-a', ['  securityContext:', '    runAsNonRoot: true']));
    const refused = await cli(['apply', '-f', r.dir, '--allow-empty'], 'default=privileged');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /runAsNonRoot is true but the process would run as uid 0/);
    assert.equal(flatContainers((await cli(['get', '-o', 'json'])).stdout).filter((x) => x.name === 'root' && x.phase === 'Running').length, 0);
  });
});
