/** Pure parts of isolation: the seccomp translation, protected host paths, id ranges (the host template's view: host-view.test.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_SECCOMP_PROFILE, PODMAN_SECCOMP_PROFILE, seccompFor, translateProfile } from '../../src/runtime/walls/seccomp.js';
import { protectedHostPathProblem, setProtectedDirs } from '../../src/api/protected-paths.js';
import { userNamespaceFor } from '../../src/runtime/walls/userns.js';
import { DEFAULT_USERNS_POOL, parseIdPool } from '../../src/runtime/walls/id-pool.js';
import { isolationSettingsFromEnv } from '../../src/runtime/walls/settings.js';
import { resolveHostUsers } from '../../src/plan/user-namespace.js';
import { DEFAULT_CAPABILITIES } from '../../src/runtime/runc/oci-config.js';
import yaml from 'js-yaml';
import { validateManifest } from '../../src/api/validate.js';
import { normalizeSpec } from '../../src/api/normalize.js';
import { hashOf } from '../../src/api/hash.js';
import type { ContainerManifest } from '../../src/api/types.js';

const profile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
  ],
  syscalls: [
    { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', args: [], includes: {}, excludes: {} },
    { names: ['mount', 'unshare'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] }, excludes: {} },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }],
      includes: {},
      excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390x'] },
    },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] }, excludes: {} },
    { names: ['sync_file_range2'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['ppc64le'] }, excludes: {} },
    { names: ['io_uring_setup'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, includes: { minKernel: '99.0' }, excludes: {} },
  ],
};

describe('seccomp translation (containers/common format → OCI)', () => {
  it('keeps the native arch with its sub-arches and resolves includes/excludes by caps, arch and kernel', () => {
    const out = translateProfile(profile, { capabilities: DEFAULT_CAPABILITIES, arch: 'x64', kernelRelease: '6.1.0' });
    assert.deepEqual(out.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.equal(out.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(out.defaultErrnoRet, 38);
    assert.deepEqual(
      out.syscalls!.map((s) => s.names.join(',')),
      ['read,write', 'clone', 'arch_prctl'],
    );
    assert.deepEqual(out.syscalls![1]!.args, [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }]);
  });

  it('with CAP_SYS_ADMIN: mount/unshare allowed, the restricted clone rule dropped (as Docker does)', () => {
    const out = translateProfile(profile, { capabilities: [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'], arch: 'arm64', kernelRelease: '6.1.0' });
    assert.deepEqual(out.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    assert.deepEqual(
      out.syscalls!.map((s) => s.names.join(',')),
      ['read,write', 'mount,unshare'],
    );
  });

  it("translates Docker's and Podman's profiles as Debian ships them; Docker's leaves unshare to CAP_SYS_ADMIN", () => {
    for (const file of [DEFAULT_SECCOMP_PROFILE, PODMAN_SECCOMP_PROFILE]) {
      const out = translateProfile(JSON.parse(readFileSync(file, 'utf8')), { capabilities: DEFAULT_CAPABILITIES });
      assert.ok(out.syscalls!.length > 5, file);
      assert.ok(
        out.syscalls!.some((s) => s.names.includes('read') && s.action === 'SCMP_ACT_ALLOW'),
        file,
      );
    }
    const docker = translateProfile(JSON.parse(readFileSync(DEFAULT_SECCOMP_PROFILE, 'utf8')), { capabilities: DEFAULT_CAPABILITIES });
    assert.ok(!docker.syscalls!.some((s) => s.names.includes('unshare') && s.action === 'SCMP_ACT_ALLOW'), 'unshare allowed without CAP_SYS_ADMIN');
  });

  it('Unconfined and privileged get none; Localhost needs an absolute path', () => {
    assert.equal(seccompFor({ type: 'Unconfined' }, { capabilities: [], privileged: false }), undefined);
    assert.equal(seccompFor(undefined, { capabilities: [], privileged: true }), undefined);
    assert.ok(seccompFor(undefined, { capabilities: DEFAULT_CAPABILITIES, privileged: false }));
    assert.throws(() => seccompFor({ type: 'Localhost', localhostProfile: 'x.json' }, { capabilities: [], privileged: false }), /absolute/);
  });
});

describe('protected host paths', () => {
  after(() => setProtectedDirs([]));

  it('refuses the state/run dirs, anything in them and every ancestor; allows siblings', () => {
    setProtectedDirs([
      { dir: '/var/lib/acetate', what: 'state dir' },
      { dir: '/run/acetate', what: 'run dir' },
    ]);
    for (const p of ['/', '/var', '/var/lib', '/var/lib/', '//var//lib', '/var/lib/acetate', '/var/lib/acetate/containers', '/run']) {
      assert.ok(protectedHostPathProblem(p), `${p} allowed`);
    }
    assert.match(protectedHostPathProblem('/var/lib')!, /contains acetate's state dir/);
    for (const p of ['/var/lib/acetatex', '/var/log', '/srv', '/run/other']) assert.equal(protectedHostPathProblem(p), undefined, p);
  });
});

describe('user namespace pool', () => {
  it('parses FIRST:COUNT and refuses pools that reach the node ids, hold no range or pass 2^32-2', () => {
    assert.deepEqual(parseIdPool('2000000:65536', 'X'), { hostID: 2_000_000, size: 65_536 });
    assert.throws(() => parseIdPool('0:65536', 'X'), /FIRST/);
    assert.throws(() => parseIdPool('100000:1000', 'X'), /COUNT/);
    assert.throws(() => parseIdPool('abc', 'X'), /X 'abc' must be FIRST:COUNT/);
    assert.throws(() => parseIdPool('4294900000:131072', 'X'), /4294967294/);
    assert.equal(userNamespaceFor(undefined, DEFAULT_USERNS_POOL), undefined);
    assert.deepEqual(userNamespaceFor(false, { hostID: 2_000_000, size: 65_536 })!.uidMappings, [{ containerID: 0, hostID: 2_000_000, size: 65_536 }]);
  });

  it('node options: the flag wins over ACETATE_USERNS_POOL, which wins over ACETATE_USERNS_RANGE (its earlier name); --host-users parses', () => {
    const env = { ACETATE_USERNS_RANGE: '3000000000:65536', ACETATE_USERNS_POOL: '2000000000:131072', ACETATE_HOST_USERS: 'true' };
    assert.deepEqual(isolationSettingsFromEnv({ ACETATE_USERNS_RANGE: '3000000000:65536' }).usernsPool, { hostID: 3_000_000_000, size: 65_536 });
    assert.deepEqual(isolationSettingsFromEnv(env).usernsPool, { hostID: 2_000_000_000, size: 131_072 });
    assert.deepEqual(isolationSettingsFromEnv(env, { usernsPool: '1200000000:655360' }).usernsPool, { hostID: 1_200_000_000, size: 655_360 });
    assert.equal(isolationSettingsFromEnv(env).hostUsersDefault, true);
    assert.equal(isolationSettingsFromEnv(env, { hostUsers: 'false' }).hostUsersDefault, false);
    assert.equal(isolationSettingsFromEnv({}).hostUsersDefault, undefined);
    assert.throws(() => isolationSettingsFromEnv({}, { hostUsers: 'maybe' }), /--host-users 'maybe' must be true .* or false/);
    assert.throws(() => isolationSettingsFromEnv({ ACETATE_USERNS_POOL: '5:5' }), /ACETATE_USERNS_POOL '5:5'/);
  });
});

describe('securityContext: seccompProfile and hostUsers', () => {
  /** `more`: further spec lines (two spaces in), e.g. a network and a probe. */
  const doc = (sc: string, template = 'host', more = '') =>
    yaml.load(`apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: x }
spec:
  template: ${template}
  command: [/bin/true]
  securityContext: ${sc}
${more}`);
  const issues = (sc: string, template?: string, more?: string) => {
    const r = validateManifest(doc(sc, template, more));
    return r.ok ? [] : r.issues.map((i) => `${i.field}: ${i.message}`);
  };

  it("validates Kubernetes' shape and the rules the schema cannot say, naming the field", () => {
    assert.deepEqual(issues('{ seccompProfile: { type: RuntimeDefault } }'), []);
    assert.deepEqual(issues('{ seccompProfile: { type: Localhost, localhostProfile: /etc/p.json } }'), []);
    assert.match(issues('{ seccompProfile: { type: Localhost } }').join('\n'), /seccompProfile\.localhostProfile: required with type Localhost/);
    assert.match(issues('{ seccompProfile: { type: Unconfined, localhostProfile: /x } }').join('\n'), /localhostProfile: only goes with type Localhost/);
    // Every template kind takes a user namespace (its layers are mounted idmapped: walls/idmap.ts).
    assert.deepEqual(issues('{ hostUsers: false }'), []);
    assert.deepEqual(issues('{ hostUsers: false }', 'debian'), []);
    assert.match(issues('{ hostUsers: false, privileged: true }', 'debian').join('\n'), /privileged: true needs hostUsers: true, not false/);
    // Unprivileged by default: privileged and network: host need hostUsers: true said by the container.
    assert.match(issues('{ privileged: true }', 'debian').join('\n'), /privileged: true needs hostUsers: true \(containers get a user namespace by default\)/);
    assert.deepEqual(issues('{ privileged: true, hostUsers: true }', 'debian'), []);
  });

  it('an exec probe on the bridge is accepted with or without a user namespace (its network namespace is its own)', () => {
    const probeIssues = (probe: string, sc: string, network = 'bridge') => issues(sc, 'host', `  network: ${network}\n  livenessProbe: ${probe}\n`);
    const exec = '{ exec: { command: [/bin/true] } }';
    for (const sc of ['{}', '{ hostUsers: false }', '{ hostUsers: true }']) assert.deepEqual(probeIssues(exec, sc), [], sc);
    assert.deepEqual(probeIssues(exec, '{}', 'none'), []);
    assert.match(probeIssues('{ exec: {} }', '{}').join('\n'), /livenessProbe\.exec/);
  });

  it('normalizes the defaults away, so that specs applied before keep their hash', () => {
    const plain = normalizeSpec(doc('{}') as ContainerManifest);
    assert.deepEqual(Object.keys(plain.security).sort(), ['capAdd', 'capDrop', 'noNewPrivileges', 'privileged']);
    // hostUsers: true is kept as written (absent is the node's default); plan resolves it to what
    // specs applied before hold (absent: the node's ids), so they keep their hash.
    const def = normalizeSpec(doc('{ seccompProfile: { type: RuntimeDefault }, hostUsers: true }') as ContainerManifest);
    assert.equal(def.security.hostUsers, true);
    assert.equal(hashOf(resolveHostUsers(def, { hostUsersDefault: false, pool: DEFAULT_USERNS_POOL })), hashOf(plain));
    assert.equal(
      resolveHostUsers(plain, { hostUsersDefault: false, pool: DEFAULT_USERNS_POOL }).security.hostUsers,
      false,
      'absent: the default, a user namespace',
    );
    const set = normalizeSpec(doc('{ seccompProfile: { type: Unconfined }, hostUsers: false }', 'debian') as ContainerManifest);
    assert.deepEqual(set.security.seccompProfile, { type: 'Unconfined' });
    assert.equal(set.security.hostUsers, false);
  });
});
