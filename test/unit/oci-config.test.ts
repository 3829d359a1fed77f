import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  DEFAULT_PATH,
  MASKED_PATHS,
  READONLY_PATHS,
  OciConfigError,
  buildOciConfig,
  checkContainerPath,
  resolveCapabilities,
  type OciConfigInput,
} from '../../src/runtime/runc/oci-config.js';
import { cpuAndPidsUpdateFlags, cpuQuotaOf, memoryUpdateFlags, ociLinuxResources } from '../../src/runtime/runc/resources.js';
import type { NormalizedSpec } from '../../src/api/types.js';
import { testSpec } from '../support/test-spec.js';
import { emptyDirMounts } from '../../src/runtime/walls/empty-dir-masks.js';

function input(spec: Partial<NormalizedSpec> = {}, extra: Partial<OciConfigInput> = {}): OciConfigInput {
  return {
    namespace: 'shop',
    name: 'web',
    spec: testSpec(spec),
    specHash: 'abc123',
    rootfsPath: '/var/lib/acetate/containers/shop_web/rootfs',
    cgroupsPath: '/acetate-1a2b3c4d/shop_web',
    hostNofileHard: 524288,
    swapAccounting: true,
    ...extra,
  };
}

const security = (s: Partial<NormalizedSpec['security']>): NormalizedSpec['security'] => ({
  privileged: false,
  noNewPrivileges: false,
  capAdd: [],
  capDrop: [],
  ...s,
});

describe('buildOciConfig (pure)', () => {
  it('process: args = command ++ args, env with a default PATH, cwd, not a terminal, root user', () => {
    const c = buildOciConfig(input({ command: ['/bin/sh', '-c'], args: ['echo hi'], env: [{ name: 'A', value: '1' }], workingDir: '/srv' }));
    assert.deepEqual(c.process.args, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(c.process.env, ['A=1', `PATH=${DEFAULT_PATH}`]);
    assert.equal(c.process.cwd, '/srv');
    assert.equal(c.process.terminal, false);
    assert.deepEqual(c.process.user, { uid: 0, gid: 0 });
  });

  it('keeps a PATH given in env, and the last value of a repeated name', () => {
    const c = buildOciConfig(
      input({
        env: [
          { name: 'PATH', value: '/x' },
          { name: 'B', value: '1' },
          { name: 'B', value: '2' },
        ],
      }),
    );
    assert.deepEqual(c.process.env, ['PATH=/x', 'B=2']);
  });

  it('root is the overlay mount point, writable; hostname from the spec or the name', () => {
    const c = buildOciConfig(input({ hostname: 'h1' }));
    assert.deepEqual(c.root, { path: '/var/lib/acetate/containers/shop_web/rootfs', readonly: false });
    assert.equal(c.hostname, 'h1');
    assert.equal(buildOciConfig(input({ hostname: '' })).hostname, 'web');
  });

  it('annotations mark ownership and the spec hash', () => {
    assert.deepEqual(buildOciConfig(input()).annotations, {
      'acetate.dev/owner': 'acetate',
      'acetate.dev/namespace': 'shop',
      'acetate.dev/name': 'web',
      'acetate.dev/spec-hash': 'abc123',
    });
  });

  it('namespaces: pid ipc uts mount cgroup + network, except for network host; no cgroup one where /sys is the node bound; a joined user namespace that owns the network', () => {
    assert.deepEqual(
      buildOciConfig(input({ network: 'none' })).linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'cgroup', 'network'],
    );
    assert.deepEqual(
      buildOciConfig(input({ network: 'host' })).linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'cgroup'],
    );
    const ids = [{ containerID: 0, hostID: 2_000_000, size: 65_536 }];
    const userNamespace = { uidMappings: ids, gidMappings: ids };
    assert.deepEqual(
      buildOciConfig(input({ network: 'none' }, { userNamespace })).linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'cgroup', 'network', 'user'],
    );
    // A user namespace in a network namespace it does not own: /sys is the node's, bound, and with
    // it the node's /sys/fs/cgroup, where /proc/self/cgroup must name the container's real path.
    const network = { netnsPath: '/run/netns/x', etcFiles: { hosts: '/h', hostname: '/n', resolvConf: '/r' } };
    const bridged = buildOciConfig(input({ network: 'bridge' }, { userNamespace, network }));
    assert.deepEqual(
      bridged.linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'network', 'user'],
    );
    assert.equal(bridged.mounts.find((m) => m.destination === '/sys')?.type, 'bind');
    assert.equal(
      bridged.mounts.find((m) => m.destination === '/sys/fs/cgroup'),
      undefined,
      "the node's, with its /sys",
    );
    // One it owns (network/netns.ts): its user namespace is joined by path, its maps still given
    // (runc writes none for a joined one), a sysfs of its own and a cgroup namespace.
    const owned = buildOciConfig(input({ network: 'bridge' }, { userNamespace, network: { ...network, usernsPath: '/run/userns/x' } }));
    assert.deepEqual(owned.linux.namespaces, [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'cgroup' },
      { type: 'network', path: '/run/netns/x' },
      { type: 'user', path: '/run/userns/x' },
    ]);
    assert.deepEqual(owned.linux.uidMappings, ids);
    assert.equal(owned.mounts.find((m) => m.destination === '/sys')?.type, 'sysfs');
    // Without a user namespace the owner's path is not used.
    const nodeIds = buildOciConfig(input({ network: 'bridge' }, { network: { ...network, usernsPath: '/run/userns/x' } }));
    assert.equal(
      nodeIds.linux.namespaces.find((n) => n.type === 'user'),
      undefined,
    );
  });

  it('standard mounts, then the spec bind mounts (rbind, ro when readOnly)', () => {
    const c = buildOciConfig(
      input({
        mounts: [
          { hostPath: '/data', containerPath: '/data', readOnly: true },
          { hostPath: '/cache', containerPath: '/var/cache/', readOnly: false },
        ],
      }),
    );
    assert.deepEqual(
      c.mounts.map((m) => m.destination),
      ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/data', '/var/cache'],
    );
    assert.deepEqual(c.mounts[7], { destination: '/data', type: 'bind', source: '/data', options: ['rbind', 'rprivate', 'ro'] });
    assert.deepEqual(c.mounts[8], { destination: '/var/cache', type: 'bind', source: '/cache', options: ['rbind', 'rprivate'] });
    assert.ok(c.mounts.find((m) => m.destination === '/sys')!.options!.includes('ro'));
    // Its own cgroups, read-only (what sizes itself from its limits finds them).
    assert.deepEqual(c.mounts[6], {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
    assert.equal(c.mounts.find((m) => m.destination === '/dev')!.type, 'tmpfs');
  });

  it('resolves hostPath mounts under the host root when the node is seen elsewhere (a pod with /host)', () => {
    const c = buildOciConfig(input({ mounts: [{ hostPath: '/srv/data', containerPath: '/data', readOnly: false }] }, { hostRoot: '/host' }));
    assert.equal(c.mounts.find((m) => m.destination === '/data')!.source, '/host/srv/data');
  });

  it('refuses container paths that are relative, the root, or contain ..', () => {
    for (const bad of ['data', '/a/../etc', '/..', '/a/..', '/']) {
      assert.throws(() => buildOciConfig(input({ mounts: [{ hostPath: '/d', containerPath: bad, readOnly: false }] })), OciConfigError, bad);
    }
    assert.throws(() => buildOciConfig(input({ mounts: [{ hostPath: 'rel', containerPath: '/d', readOnly: false }] })), /hostPath/);
    assert.equal(checkContainerPath('/a//b/./c/'), '/a/b/c');
    assert.equal(checkContainerPath('/a..b'), '/a..b');
  });

  it('no container path with a .. segment is ever accepted (property)', () => {
    const seg = fc.oneof(fc.constantFrom('..', '.', 'a', 'b..', '..c', ''), fc.stringMatching(/^[a-z.]{1,4}$/));
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 6 }), (segs) => {
        const p = `/${segs.join('/')}`;
        let out: string | undefined;
        try {
          out = checkContainerPath(p);
        } catch (e) {
          assert.ok(e instanceof OciConfigError);
          return;
        }
        assert.ok(!segs.includes('..'));
        assert.ok(out.startsWith('/') && !out.split('/').includes('..'));
      }),
    );
  });

  it('RLIMIT_NOFILE within the host hard limit', () => {
    assert.deepEqual(buildOciConfig(input({}, { hostNofileHard: 4096 })).process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }]);
    assert.deepEqual(buildOciConfig(input({}, { hostNofileHard: 10_000_000 })).process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1_048_576, soft: 1_048_576 }]);
  });

  it('cgroup limits: cpu quota/period, memory (+ swap = memory on v1 with memsw), pids; devices denied', () => {
    const c = buildOciConfig(input({ resources: { cpuMillis: 500, memoryBytes: 256 * 2 ** 20, pids: 100 } }));
    assert.equal(c.linux.cgroupsPath, '/acetate-1a2b3c4d/shop_web');
    assert.deepEqual(c.linux.resources, {
      devices: [{ allow: false, access: 'rwm' }],
      cpu: { quota: 50_000, period: 100_000 },
      memory: { limit: 256 * 2 ** 20, swap: 256 * 2 ** 20 },
      pids: { limit: 100 },
    });
    const noSwap = buildOciConfig(input({ resources: { memoryBytes: 1 << 20 } }, { swapAccounting: false }));
    assert.deepEqual(noSwap.linux.resources.memory, { limit: 1 << 20 });
    assert.deepEqual(buildOciConfig(input({ resources: {} })).linux.resources, { devices: [{ allow: false, access: 'rwm' }] });
  });

  it('Docker default capabilities; noNewPrivileges from the spec; runc default masked/readonly paths', () => {
    const c = buildOciConfig(input({ security: security({ noNewPrivileges: true }) }));
    assert.deepEqual([...c.process.capabilities.bounding].sort(), [...DEFAULT_CAPABILITIES].sort());
    assert.deepEqual(c.process.capabilities.effective, c.process.capabilities.bounding);
    assert.deepEqual(c.process.capabilities.permitted, c.process.capabilities.bounding);
    assert.equal(c.process.noNewPrivileges, true);
    assert.equal(buildOciConfig(input({ security: security({ noNewPrivileges: false }) })).process.noNewPrivileges, false);
    assert.deepEqual(c.linux.maskedPaths, MASKED_PATHS);
    assert.deepEqual(c.linux.readonlyPaths, READONLY_PATHS);
  });

  it('masked dirs given as bind mounts of an empty dir leave maskedPaths (runc would mount a tmpfs on each), after /sys; privileged: none', () => {
    const maskMounts = emptyDirMounts('/var/lib/acetate/empty', ['/sys/firmware']);
    const c = buildOciConfig(input({}, { maskMounts }));
    assert.deepEqual(
      c.linux.maskedPaths,
      MASKED_PATHS.filter((p) => p !== '/sys/firmware'),
    );
    const at = c.mounts.findIndex((m) => m.destination === '/sys/firmware');
    assert.deepEqual(c.mounts[at], {
      destination: '/sys/firmware',
      type: 'bind',
      source: '/var/lib/acetate/empty',
      options: ['bind', 'rprivate', 'ro', 'nosuid', 'nodev', 'noexec'],
    });
    assert.ok(at > c.mounts.findIndex((m) => m.destination === '/sys/fs/cgroup'), 'mounted over the sysfs (and cgroup) mounts');
    // After the spec's mounts, as runc's maskedPaths are: a hostPath bound at /sys is masked too.
    const overSys = buildOciConfig(
      input({ mounts: [{ hostPath: '/sys', containerPath: '/sys', readOnly: true }] as NormalizedSpec['mounts'] }, { maskMounts }),
    );
    const dests = overSys.mounts.map((m) => m.destination);
    assert.ok(dests.lastIndexOf('/sys/firmware') > dests.lastIndexOf('/sys'), dests.join(' '));
    const priv = buildOciConfig(input({ security: security({ privileged: true }) }, { maskMounts }));
    assert.deepEqual(priv.linux.maskedPaths, []);
    assert.equal(
      priv.mounts.findIndex((m) => m.destination === '/sys/firmware'),
      -1,
    );
  });

  it('privileged: all capabilities (within the bounding set), every device, nothing masked, /sys rw', () => {
    const c = buildOciConfig(input({ security: security({ privileged: true }) }));
    assert.deepEqual(c.process.capabilities.bounding, ALL_CAPABILITIES);
    assert.deepEqual(c.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
    assert.deepEqual(c.linux.maskedPaths, []);
    assert.deepEqual(c.linux.readonlyPaths, []);
    assert.ok(c.mounts.find((m) => m.destination === '/sys')!.options!.includes('rw'));
    assert.ok(c.mounts.find((m) => m.destination === '/sys/fs/cgroup')!.options!.includes('rw'));
    const bounded = buildOciConfig(input({ security: security({ privileged: true }) }, { boundingCapabilities: ['CAP_KILL', 'CAP_SYS_ADMIN'] }));
    assert.deepEqual(bounded.process.capabilities.bounding, ['CAP_KILL', 'CAP_SYS_ADMIN']);
  });

  it('rejects an empty command and a relative workingDir', () => {
    assert.throws(() => buildOciConfig(input({ command: [] })), /command/);
    assert.throws(() => buildOciConfig(input({ workingDir: 'srv' })), /workingDir/);
  });
});

describe('resolveCapabilities (Docker rules)', () => {
  it('adds and drops, with or without the CAP_ prefix, any case', () => {
    const caps = resolveCapabilities(security({ capAdd: ['net_admin'], capDrop: ['CAP_CHOWN', 'MKNOD'] }));
    assert.ok(caps.includes('CAP_NET_ADMIN'));
    assert.ok(!caps.includes('CAP_CHOWN'));
    assert.ok(!caps.includes('CAP_MKNOD'));
    assert.equal(caps.length, DEFAULT_CAPABILITIES.length - 1);
  });

  it('drop ALL keeps only the added ones; add ALL gives everything but the dropped ones', () => {
    assert.deepEqual(resolveCapabilities(security({ capDrop: ['ALL'], capAdd: ['CAP_NET_BIND_SERVICE'] })), ['CAP_NET_BIND_SERVICE']);
    const all = resolveCapabilities(security({ capAdd: ['ALL'], capDrop: ['CAP_SYS_ADMIN'] }));
    assert.equal(all.length, ALL_CAPABILITIES.length - 1);
    assert.ok(!all.includes('CAP_SYS_ADMIN'));
  });

  it('an added capability wins over the same one dropped; no duplicates; kernel order', () => {
    const caps = resolveCapabilities(security({ capAdd: ['CAP_KILL', 'KILL'], capDrop: ['CAP_KILL'] }));
    assert.equal(caps.filter((c) => c === 'CAP_KILL').length, 1);
    assert.deepEqual(
      caps,
      ALL_CAPABILITIES.filter((c) => caps.includes(c)),
    );
  });

  it('refuses an unknown capability', () => {
    assert.throws(() => resolveCapabilities(security({ capAdd: ['CAP_FLY'] })), /unknown capability 'CAP_FLY'/);
  });
});

describe('cgroup settings from Resources', () => {
  it('cpu quota = millis * 100 per 100ms period, at least 1ms', () => {
    assert.equal(cpuQuotaOf(1000), 100_000);
    assert.equal(cpuQuotaOf(250), 25_000);
    assert.equal(cpuQuotaOf(1), 1_000);
    assert.equal(cpuQuotaOf(2500), 250_000);
  });

  it('runc update flags: an absent limit is -1 (removed)', () => {
    assert.deepEqual(cpuAndPidsUpdateFlags({ cpuMillis: 500, pids: 10 }), ['--cpu-period', '100000', '--cpu-quota', '50000', '--pids-limit', '10']);
    assert.deepEqual(cpuAndPidsUpdateFlags({}), ['--cpu-period', '100000', '--cpu-quota', '-1', '--pids-limit', '-1']);
    assert.deepEqual(memoryUpdateFlags(1024, { swapAccounting: true }), ['--memory', '1024', '--memory-swap', '1024']);
    assert.deepEqual(memoryUpdateFlags(undefined, { swapAccounting: true }), ['--memory', '-1', '--memory-swap', '-1']);
    assert.deepEqual(memoryUpdateFlags(1024, { swapAccounting: false }), ['--memory', '1024']);
  });

  it('OCI resources omit what is unlimited', () => {
    assert.deepEqual(ociLinuxResources({ pids: 5 }, { swapAccounting: true }), { devices: [{ allow: false, access: 'rwm' }], pids: { limit: 5 } });
  });
});
