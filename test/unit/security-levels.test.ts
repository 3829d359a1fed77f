/**
 * The security levels' rules (src/policy/levels.ts), the node's setting of a level per namespace
 * (node-levels.ts), the namespace labels (namespace-labels.ts), and how a file manifest breaking
 * its level is reported (file, line, field, rule) without being desired.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSecurityLevel, type NodeSecurityPolicy } from '../../src/policy/levels.js';
import { levelFor, nodeSecurityFromEnv, parseInlineSetting, parseSettingFile, SecuritySettingError, thisNodeSecurity } from '../../src/policy/node-levels.js';
import { levelLabel, namespaceLevels } from '../../src/policy/namespace-labels.js';
import { loadManifestFile } from '../../src/sources/files/load.js';
import { processUser } from '../../src/runtime/runc/oci-config.js';
import { normalizeManifest } from '../../src/api/normalize.js';
import { validateManifest } from '../../src/api/validate.js';
import type { ContainerManifest } from '../../src/api/types.js';

const NODE: NodeSecurityPolicy = { allowedHostPaths: ['/srv/shared'], hostUsersByDefault: false };
const rules = (spec: unknown, level: 'privileged' | 'baseline' | 'restricted', node = NODE) =>
  checkSecurityLevel(spec, level, node).map((v) => `${v.rule} ${v.field}`);

describe('security levels: the rules', () => {
  it('privileged refuses nothing', () => {
    assert.deepEqual(rules({ network: 'host', securityContext: { privileged: true, hostUsers: true } }, 'privileged'), []);
  });

  it('baseline refuses the node /etc, SYS_ADMIN, host network, privileged, Unconfined and hostUsers: true, naming rule and field', () => {
    const spec = {
      network: 'host',
      mounts: [
        { hostPath: '/etc', containerPath: '/node-etc' },
        { hostPath: '/srv/shared/app/', containerPath: '/data' },
        { hostPath: '/srv/shared-not', containerPath: '/x' },
      ],
      securityContext: {
        privileged: true,
        hostUsers: true,
        seccompProfile: { type: 'Unconfined' },
        capabilities: { add: ['CHOWN', 'SYS_ADMIN', 'CAP_NET_RAW', 'NET_BIND_SERVICE'] },
      },
    };
    assert.deepEqual(rules(spec, 'baseline'), [
      'privileged spec.securityContext.privileged',
      'hostNamespaces spec.network',
      'capabilities_baseline spec.securityContext.capabilities.add[1]',
      'capabilities_baseline spec.securityContext.capabilities.add[2]',
      'seccompProfile_baseline spec.securityContext.seccompProfile.type',
      'hostUsers spec.securityContext.hostUsers',
      'hostPathVolumes spec.mounts[0].hostPath',
      'hostPathVolumes spec.mounts[2].hostPath',
    ]);
    assert.deepEqual(rules({ network: 'bridge', securityContext: { capabilities: { add: ['KILL'] } } }, 'baseline'), []);
  });

  it('baseline refuses an absent hostUsers only where the node runs such containers with its own ids', () => {
    assert.deepEqual(rules({}, 'baseline', { ...NODE, hostUsersByDefault: true }), ['hostUsers spec.securityContext.hostUsers']);
    assert.deepEqual(rules({ securityContext: { hostUsers: false } }, 'baseline', { ...NODE, hostUsersByDefault: true }), []);
    assert.deepEqual(rules({}, 'baseline'), []);
  });

  it('baseline follows symlinks where the node resolves them: a link under an allowed dir to /etc is refused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-levels-'));
    try {
      await mkdir(path.join(dir, 'ok'));
      await symlink('/etc', path.join(dir, 'link'));
      const node: NodeSecurityPolicy = { allowedHostPaths: [dir], hostUsersByDefault: false, resolve: (p) => realpathSync.native(p) };
      const spec = (p: string) => ({ mounts: [{ hostPath: path.join(dir, p), containerPath: '/m' }] });
      assert.deepEqual(rules(spec('ok'), 'baseline', node), []);
      assert.deepEqual(rules(spec('link'), 'baseline', node), ['hostPathVolumes spec.mounts[0].hostPath']);
      assert.match(checkSecurityLevel(spec('link'), 'baseline', node)[0]!.message, /symlink to '\/etc'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('restricted adds non-root, capabilities dropped (only NET_BIND_SERVICE back), no privilege escalation, read-only host paths', () => {
    assert.deepEqual(
      rules({ mounts: [{ hostPath: '/srv/shared', containerPath: '/d' }], securityContext: { runAsUser: 0, noNewPrivileges: false } }, 'restricted'),
      [
        'allowPrivilegeEscalation spec.securityContext.noNewPrivileges',
        'runAsNonRoot spec.securityContext.runAsNonRoot',
        'runAsUser spec.securityContext.runAsUser',
        'capabilities_restricted spec.securityContext.capabilities.drop',
        'hostPathReadOnly spec.mounts[0].readOnly',
      ],
    );
    const ok = {
      mounts: [{ hostPath: '/srv/shared', containerPath: '/d', readOnly: true }],
      securityContext: { runAsNonRoot: true, runAsUser: 1000, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
    };
    assert.deepEqual(rules(ok, 'restricted'), []);
    const chown = { ...ok, securityContext: { ...ok.securityContext, capabilities: { drop: ['ALL'], add: ['CHOWN'] } } };
    assert.deepEqual(rules(chown, 'restricted'), ['capabilities_restricted spec.securityContext.capabilities.add[0]']);
    assert.deepEqual(rules(chown, 'baseline'), []);
  });

  it('never throws on input validation would refuse', () => {
    for (const bad of [null, 1, 'x', [], { mounts: 'x' }, { securityContext: { capabilities: { add: [1, null] } } }, { mounts: [null, { hostPath: 3 }] }])
      assert.doesNotThrow(() => checkSecurityLevel(bad, 'restricted', NODE));
  });
});

describe('security levels: the node setting and namespace labels', () => {
  const base = { hostUsersByDefault: false };

  it('reads the inline form and the YAML file form; baseline when unset', () => {
    const s = parseInlineSetting('default=restricted, infra=privileged,allow-host-path=/srv/shared', '$X', base);
    assert.equal(levelFor(s, 'infra'), 'privileged');
    assert.equal(levelFor(s, 'other'), 'restricted');
    assert.deepEqual(s.policy.allowedHostPaths, ['/srv/shared']);
    const f = parseSettingFile('namespaces: { infra: privileged }\nallowedHostPaths: [/data]\n', '/etc/x.yaml', base);
    assert.equal(levelFor(f, 'infra'), 'privileged');
    assert.equal(levelFor(f, 'tenant'), 'baseline');
    assert.deepEqual(f.policy.allowedHostPaths, ['/data']);
    const unset = nodeSecurityFromEnv({}, base);
    if (unset.origin === 'built-in default') assert.equal(levelFor(unset, 'x'), 'baseline');
  });

  it('refuses a setting it cannot read, naming it, rather than falling back to a looser level', () => {
    for (const bad of ['default=root', 'tenant', 'allow-host-path=relative', 'allow-host-path=/a/../etc', 'Bad_NS=baseline'])
      assert.throws(
        () => parseInlineSetting(bad, '$ACETATE_POD_SECURITY', base),
        (e: Error) => e instanceof SecuritySettingError && e.message.startsWith('$ACETATE_POD_SECURITY'),
      );
    assert.throws(() => parseSettingFile('default: [', '/f.yaml', base), /\/f\.yaml: not YAML/);
    assert.throws(() => parseSettingFile('defaults: baseline', '/f.yaml', base), /unknown field 'defaults'/);
    assert.throws(() => nodeSecurityFromEnv({ ACETATE_POD_SECURITY: '/nonexistent/ps.yaml' }, base), /cannot read the security level setting \/nonexistent/);
  });

  it("reads ACETATE_HOST_USERS with the runtime's parser: the same spellings, and a bad one is refused, not read as false", () => {
    const inline = { ACETATE_POD_SECURITY: 'default=baseline' };
    assert.equal(thisNodeSecurity({ ...inline, ACETATE_HOST_USERS: ' Yes ' }).policy.hostUsersByDefault, true);
    assert.equal(thisNodeSecurity({ ...inline, ACETATE_HOST_USERS: '0' }).policy.hostUsersByDefault, false);
    assert.equal(thisNodeSecurity(inline).policy.hostUsersByDefault, false);
    assert.throws(() => thisNodeSecurity({ ...inline, ACETATE_HOST_USERS: 'maybe' }), /ACETATE_HOST_USERS 'maybe' must be true .* or false/);
  });

  it('namespace labels: enforce, warn, audit; a typo counts as restricted; defaults', () => {
    assert.deepEqual(namespaceLevels(undefined, 'baseline'), { enforce: 'baseline', warn: 'privileged', audit: 'privileged' });
    assert.deepEqual(
      namespaceLevels({ [levelLabel('enforce')]: 'privileged', [levelLabel('warn')]: 'restricted', [levelLabel('audit')]: 'Baseline' }, 'baseline'),
      {
        enforce: 'privileged',
        warn: 'restricted',
        audit: 'restricted',
      },
    );
  });
});

describe('security levels: a file manifest beyond its level', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-levels-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is a forbidden problem with file, line, field and rule; its key is known and it is not desired', async () => {
    const file = path.join(dir, 'a.yaml');
    await writeFile(
      file,
      [
        'apiVersion: acetate.dev/v1alpha1',
        'kind: Container',
        'metadata: { name: ok, namespace: infra }',
        'spec: { template: host, command: [sleep, "1"], network: host, securityContext: { hostUsers: true } }',
        '---',
        'apiVersion: acetate.dev/v1alpha1',
        'kind: Container',
        'metadata: { name: bad, namespace: tenant }',
        'spec:',
        '  template: debian',
        '  command: [sleep, "1"]',
        '  securityContext:',
        '    hostUsers: false',
        '    capabilities:',
        '      add: [SYS_ADMIN]',
        '',
      ].join('\n'),
    );
    const security = parseInlineSetting('default=baseline,infra=privileged', '$ACETATE_POD_SECURITY', base0());
    const r = await loadManifestFile(file, { capacity: { security } });
    assert.deepEqual(
      r.containers.map((c) => c.key),
      ['infra/ok'],
    );
    assert.equal(r.problems.length, 1);
    const p = r.problems[0]!;
    assert.equal(p.kind, 'forbidden');
    assert.deepEqual(p.keys, ['tenant/bad']);
    assert.equal(p.line, 15);
    assert.equal(p.field, 'spec.securityContext.capabilities.add[0]');
    assert.deepEqual(p.securityRule, { level: 'baseline', rule: 'capabilities_baseline' });
    assert.match(p.message, /forbidden by security level baseline \(rule capabilities_baseline\): 'SYS_ADMIN'.*namespace tenant/);
  });
});

function base0() {
  return { hostUsersByDefault: false };
}

describe('securityContext.runAsUser / runAsGroup / runAsNonRoot', () => {
  const spec = (sc: Record<string, unknown>) => {
    const v = validateManifest({
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'c' },
      spec: { template: 'host', command: ['/bin/true'], securityContext: sc },
    });
    assert.ok(v.ok, JSON.stringify(v));
    return normalizeManifest(v.manifest as ContainerManifest, { kind: 'file', file: 'f', line: 1 }).spec.security;
  };

  it("sets the process's uid and gid over the image's user, Kubernetes' way", () => {
    assert.deepEqual(processUser(spec({}), undefined), { uid: 0, gid: 0 });
    assert.deepEqual(processUser(spec({ runAsUser: 1000 }), { uid: 5, gid: 6 }), { uid: 1000, gid: 0 });
    assert.deepEqual(processUser(spec({ runAsUser: 1000, runAsGroup: 100 }), undefined), { uid: 1000, gid: 100 });
    assert.deepEqual(processUser(spec({}), { uid: 5, gid: 6 }), { uid: 5, gid: 6 });
    assert.deepEqual(spec({}), { privileged: false, noNewPrivileges: true, capAdd: [], capDrop: [] }, 'absent: the spec (and its hash) as before');
  });

  it('runAsNonRoot refuses uid 0, from the spec or the image', () => {
    assert.throws(() => processUser(spec({ runAsNonRoot: true }), undefined), /runAsNonRoot is true but the process would run as uid 0/);
    assert.throws(() => processUser(spec({ runAsNonRoot: true }), { uid: 0, gid: 0 }), /the image's User/);
    assert.deepEqual(processUser(spec({ runAsNonRoot: true }), { uid: 7, gid: 7 }), { uid: 7, gid: 7 });
  });
});
