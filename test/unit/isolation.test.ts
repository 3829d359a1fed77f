/** Pure parts of isolation: the seccomp translation, the host template's masks, protected host paths, id ranges. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_SECCOMP_PROFILE, PODMAN_SECCOMP_PROFILE, seccompFor, translateProfile } from '../../src/runtime/walls/seccomp.js';
import { hostMaskRules, isolationMounts, type ResolvedMask } from '../../src/runtime/walls/host-masks.js';
import { protectedHostPathProblem, setProtectedDirs } from '../../src/api/protected-paths.js';
import { parseIdRange, userNamespaceFor } from '../../src/runtime/walls/userns.js';
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

describe('host template masks', () => {
  const rules = hostMaskRules({ stateDir: '/srv/acetate', runDir: '/run/acetate-x', show: ['/home'], hide: ['/data'] });

  it('always hides the configured state and run dirs; show and hide adjust the defaults', () => {
    const paths = rules.map((r) => r.path);
    for (const p of ['/srv/acetate', '/run/acetate-x', '/var/lib/acetate', '/run/acetate', '/etc/shadow', '/root', '/data']) assert.ok(paths.includes(p), p);
    assert.ok(!paths.includes('/home'));
    const own = hostMaskRules({ stateDir: '/var/lib/acetate', runDir: '/run/acetate', show: ['/var/lib/acetate', '/run/acetate'] });
    assert.ok(own.some((r) => r.path === '/var/lib/acetate') && own.some((r) => r.path === '/run/acetate'), 'own dirs cannot be shown');
  });

  it('mounts parents first and skips what a covered dir already hides (a read-only tmpfs takes no mount point)', () => {
    const masks: ResolvedMask[] = [
      { path: '/srv/acetate', kind: 'hidden', why: '', covers: [{ path: '/srv/acetate', dir: true }] },
      { path: '/etc/shadow', kind: 'hidden', why: '', covers: [{ path: '/etc/shadow', dir: false }] },
      { path: '/srv', kind: 'hidden', why: '', covers: [{ path: '/srv', dir: true }] },
      { path: '/var/run', kind: 'private', why: '', covers: [{ path: '/run', dir: true }] },
      { path: '/run', kind: 'private', why: '', covers: [{ path: '/run', dir: true }] },
      { path: '/tmp', kind: 'private', why: '', covers: [{ path: '/tmp', dir: true }] },
    ];
    const m = isolationMounts(masks);
    assert.deepEqual(
      m.map((x) => x.destination),
      ['/srv', '/run', '/tmp', '/etc/shadow'],
    );
    assert.deepEqual(m[0]!.options, ['ro', 'nosuid', 'nodev', 'noexec', 'size=4k', 'mode=755']);
    assert.ok(m[2]!.options!.includes('mode=1777') && !m[2]!.options!.includes('ro'), '/tmp is writable');
    assert.equal(m[3]!.source, '/dev/null');
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

describe('user namespace ranges', () => {
  it('parses FIRST:COUNT and refuses ranges that reach the node ids or are too small', () => {
    assert.deepEqual(parseIdRange('2000000:65536'), { hostID: 2_000_000, size: 65_536 });
    assert.throws(() => parseIdRange('0:65536'), /FIRST/);
    assert.throws(() => parseIdRange('100000:1000'), /COUNT/);
    assert.throws(() => parseIdRange('abc'), /FIRST:COUNT/);
    assert.equal(userNamespaceFor(undefined, parseIdRange(undefined)), undefined);
    assert.deepEqual(userNamespaceFor(false, { hostID: 2_000_000, size: 65_536 })!.uidMappings, [{ containerID: 0, hostID: 2_000_000, size: 65_536 }]);
  });
});

describe('securityContext: seccompProfile and hostUsers', () => {
  const doc = (sc: string, template = 'host') =>
    yaml.load(`apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: x }
spec:
  template: ${template}
  command: [/bin/true]
  securityContext: ${sc}
`);
  const issues = (sc: string, template?: string) => {
    const r = validateManifest(doc(sc, template));
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
    assert.match(issues('{ hostUsers: false, privileged: true }', 'debian').join('\n'), /hostUsers: false cannot go with privileged/);
  });

  it('normalizes the defaults away, so that specs applied before keep their hash', () => {
    const plain = normalizeSpec(doc('{}') as ContainerManifest);
    assert.deepEqual(Object.keys(plain.security).sort(), ['capAdd', 'capDrop', 'noNewPrivileges', 'privileged']);
    const def = normalizeSpec(doc('{ seccompProfile: { type: RuntimeDefault }, hostUsers: true }') as ContainerManifest);
    assert.equal(hashOf(def), hashOf(plain));
    const set = normalizeSpec(doc('{ seccompProfile: { type: Unconfined }, hostUsers: false }', 'debian') as ContainerManifest);
    assert.deepEqual(set.security.seccompProfile, { type: 'Unconfined' });
    assert.equal(set.security.hostUsers, false);
  });
});
