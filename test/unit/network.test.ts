/** The pure parts of bridge networking: validation, normalization, plan, /etc files, node network. */
import assert from 'node:assert/strict';
import { validateManifest } from '../../src/api/validate.js';
import { hashOf } from '../../src/api/hash.js';
import { formatPorts, sameClaim, samePorts } from '../../src/api/ports.js';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import { containerResolvConf, hostsFile } from '../../src/runtime/network/etc-files.js';
import { inSubnet, parseSubnet, resolveNodeNetwork } from '../../src/runtime/network/node-config.js';
import { buildOciConfig } from '../../src/runtime/runc/oci-config.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import type { DesiredContainer } from '../../src/api/types.js';
import { actualFrom, desired } from '../support/model.js';
import { testSpec } from '../support/test-spec.js';

function issues(spec: Record<string, unknown>): string[] {
  const r = validateManifest({
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'web' },
    spec: { template: 'host', command: ['/bin/true'], ...spec },
  });
  return r.ok ? [] : r.issues.map((i) => `${i.field}: ${i.message}`);
}

function one(d: DesiredContainer, a: ActualContainer) {
  return plan({ desired: new Map([[d.key, d]]), actual: new Map([[a.key, a]]), complete: true });
}

const http = (hostPort: number, hostIP?: string) => ({ name: 'http', containerPort: 80, hostPort, ...(hostIP ? { hostIP } : {}) });

describe('network: API', () => {
  it('accepts bridge with ports, and says what is wrong with bad ports', () => {
    assert.deepEqual(issues({ network: 'bridge', ports: [http(8080, '127.0.0.1'), { containerPort: 53, hostPort: 5353, protocol: 'UDP' }] }), []);
    assert.deepEqual(issues({ network: 'bridge', ports: [{ containerPort: 0 }] }), ['spec.ports[0].containerPort: 0 must be at least 1']);
    assert.deepEqual(issues({ network: 'bridge', ports: [{ containerPort: 80, hostPort: 65536 }] }), ['spec.ports[0].hostPort: 65536 must be at most 65535']);
    assert.deepEqual(issues({ network: 'bridge', ports: [{ containerPort: 80, protocol: 'SCTP' }] }), [
      "spec.ports[0].protocol: 'SCTP' is not one of TCP, UDP",
    ]);
    assert.deepEqual(issues({ network: 'bridge', ports: [{ containerPort: 80, hostPort: 1, hostIP: '::1' }] }), [
      "spec.ports[0].hostIP: '::1' is not an IPv4 address such as 127.0.0.1",
    ]);
    assert.deepEqual(issues({ network: 'bridged' }), ["spec.network: 'bridged' is not one of none, host, bridge"]);
  });

  it('refuses a published port without network bridge, the same claim twice, and a name twice', () => {
    assert.deepEqual(issues({ ports: [http(8080)] }), ['spec.ports[0].hostPort: publishing a port on the node needs network: bridge (network is none)']);
    assert.deepEqual(issues({ network: 'bridge', ports: [http(8080), { containerPort: 81, hostPort: 8080, hostIP: '127.0.0.1' }] }), [
      'spec.ports[1].hostPort: 127.0.0.1:8080/TCP is already published by ports[0]',
    ]);
    assert.deepEqual(
      issues({ network: 'bridge', ports: [http(8080), { containerPort: 8080, hostPort: 8080, protocol: 'UDP' }] }),
      [],
      'TCP and UDP are two sockets',
    );
    assert.deepEqual(issues({ network: 'bridge', ports: [http(8080), { name: 'http', containerPort: 81 }] }), [
      "spec.ports[1].name: 'http' is already the name of ports[0]",
    ]);
  });

  it('a spec without ports keeps the hash it had before ports existed', () => {
    const d = desired('web');
    assert.equal('ports' in d.spec, false);
    assert.equal(hashOf(d.spec), hashOf({ ...d.spec }));
    assert.deepEqual(desired('web', { network: 'bridge', ports: [http(8080, '0.0.0.0')] }).spec.ports, [
      { name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP' },
    ]);
  });

  it('claims: 0.0.0.0 overlaps every address; ports compare without names and order', () => {
    assert.ok(sameClaim({ containerPort: 1, hostPort: 80, protocol: 'TCP' }, { containerPort: 2, hostPort: 80, hostIP: '127.0.0.1', protocol: 'TCP' }));
    assert.ok(
      !sameClaim(
        { containerPort: 1, hostPort: 80, hostIP: '127.0.0.2', protocol: 'TCP' },
        { containerPort: 2, hostPort: 80, hostIP: '127.0.0.1', protocol: 'TCP' },
      ),
    );
    assert.ok(samePorts([{ name: 'a', containerPort: 1, hostPort: 2, protocol: 'TCP' }], [{ containerPort: 1, hostPort: 2, protocol: 'TCP' }]));
  });
});

describe('network: plan', () => {
  it('a changed hostPort on a running bridge container is `~ ports ... (in place)`', () => {
    const before = desired('web', { network: 'bridge', ports: [http(8080, '127.0.0.1')] });
    const after = desired('web', { network: 'bridge', ports: [http(8081, '127.0.0.1')] });
    const p = one(after, actualFrom(before));
    // A change that drops a port and adds one: the release first (it claims nothing), then the claim.
    assert.deepEqual(
      p.actions.map((a) => [a.kind, a.releasesPorts ?? false]),
      [
        ['ports', true],
        ['ports', false],
      ],
    );
    const out = renderPlan(p);
    assert.match(out, /~ ports\s+default\/web\s+ports 127\.0\.0\.1:8080→80\/TCP released first \(in place\), then 127\.0\.0\.1:8081→80\/TCP claimed/);
    assert.match(out, /~ ports\s+default\/web\s+ports none → 127\.0\.0\.1:8081→80\/TCP \(in place\)/);
    // Only added (or only dropped): one action.
    const more = desired('web', { network: 'bridge', ports: [http(8080, '127.0.0.1'), { ...http(8081, '127.0.0.1'), name: 'two', containerPort: 81 }] });
    assert.deepEqual(
      one(more, actualFrom(before)).actions.map((a) => [a.kind, a.releasesPorts ?? false]),
      [['ports', false]],
    );
  });

  it('a swap of host ports between two containers: both releases come before either claim when applied', () => {
    const a0 = desired('a', { network: 'bridge', ports: [http(8080)] });
    const b0 = desired('b', { network: 'bridge', ports: [http(8081)] });
    const a1 = desired('a', { network: 'bridge', ports: [http(8081)] });
    const b1 = desired('b', { network: 'bridge', ports: [http(8080)] });
    const p = plan({
      desired: new Map([
        ['default/a', a1],
        ['default/b', b1],
      ]),
      actual: new Map([
        ['default/a', actualFrom(a0)],
        ['default/b', actualFrom(b0)],
      ]),
      complete: true,
    });
    const release = p.actions.filter((x) => x.releasesPorts);
    assert.deepEqual(
      release.map((x) => [x.key, x.kind === 'ports' ? formatPorts(x.to) : '']),
      [
        ['default/a', 'none'],
        ['default/b', 'none'],
      ],
    );
  });

  it('of a stopped container the new ports are recorded only (published at the next start)', () => {
    const before = desired('web', { network: 'bridge', ports: [http(8080)], state: 'Stopped' });
    const after = desired('web', { network: 'bridge', ports: [http(8081)], state: 'Stopped' });
    const p = one(after, actualFrom(before, { state: 'absent' }));
    assert.deepEqual(
      p.actions.map((a) => [a.kind, a.kind === 'configure' ? a.fields : []]),
      [['configure', ['ports']]],
    );
  });

  it("a ports change that failed is planned again: the ports in force are the network's, not the record's", () => {
    const d = desired('web', { network: 'bridge', ports: [http(8081)] });
    const a = actualFrom(d);
    a.network = { ip: '10.90.0.2', ports: [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP' }] };
    assert.deepEqual(
      one(d, a).actions.map((x) => x.kind),
      ['ports', 'ports'],
    );
  });

  it('a broken network is repaired in place; a mode change is a replace and says so', () => {
    const d = desired('web', { network: 'bridge' });
    const a = actualFrom(d);
    a.network = { ip: '10.90.0.2', ports: [], problem: 'veth veth1234 of 10.90.0.2 is gone' };
    const p = one(d, a);
    assert.deepEqual(
      p.actions.map((x) => x.kind),
      ['network'],
    );
    assert.match(p.actions[0]!.reason, /veth veth1234 of 10\.90\.0\.2 is gone: rebuilding it in place \(same address, same pid\)/);
    const r = one(desired('web', { network: 'none' }), actualFrom(d));
    assert.equal(r.actions[0]?.kind, 'replace');
    assert.match(r.actions[0]!.reason, /network changed \(network bridge → none\): cannot change in place/);
  });
});

describe('network: node and /etc files', () => {
  it('defaults that avoid Podman and Docker; subnet checks', () => {
    const saved = { ...process.env };
    delete process.env.ACETATE_NETWORK_BRIDGE;
    delete process.env.ACETATE_NETWORK_SUBNET;
    try {
      assert.deepEqual(resolveNodeNetwork({}, 'abcd1234'), { bridge: 'acetate0', subnet: '10.90.0.0/16', gateway: '10.90.0.1', name: 'acetate-abcd1234' });
      assert.equal(resolveNodeNetwork({}, 'x', { bridge: 'br9', subnet: '10.1.2.0/24' }).gateway, '10.1.2.1', 'what the instance used last');
      assert.equal(resolveNodeNetwork({ subnet: '10.3.0.0/24' }, 'x', { subnet: '10.1.2.0/24' }).subnet, '10.3.0.0/24', 'a flag wins');
    } finally {
      process.env = saved;
    }
    assert.throws(() => parseSubnet('10.90.0.1/16'), /host bits set \(did you mean 10\.90\.0\.0\/16\?\)/);
    assert.throws(() => parseSubnet('banana'), /not an IPv4 CIDR/);
    assert.throws(() => resolveNodeNetwork({ bridge: 'a-very-long-bridge-name' }, 'x'), /not an interface name/);
    assert.ok(inSubnet('10.90.3.4', '10.90.0.0/16') && !inSubnet('10.91.0.1', '10.90.0.0/16'));
  });

  it('resolv.conf: a loopback resolver is replaced by the upstream servers, else public ones; search kept', () => {
    assert.equal(
      containerResolvConf('nameserver 127.0.0.53\nsearch lan\n', 'nameserver 192.0.2.1\nnameserver 192.0.2.2\n'),
      'search lan\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n',
    );
    assert.equal(containerResolvConf('nameserver 127.0.0.1\n', undefined), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    assert.equal(containerResolvConf('nameserver 10.0.0.2\noptions edns0\n', undefined), 'nameserver 10.0.0.2\noptions edns0\n');
    assert.match(hostsFile('web', '10.90.0.7'), /^10\.90\.0\.7\tweb$/m);
  });

  it('the OCI config joins the persistent namespace and bind-mounts the /etc files before user mounts', () => {
    const etcFiles = { hosts: '/r/etc/hosts', hostname: '/r/etc/hostname', resolvConf: '/r/etc/resolv.conf' };
    const cfg = buildOciConfig({
      namespace: 'default',
      name: 'web',
      spec: testSpec({ network: 'bridge', mounts: [{ hostPath: '/srv/hosts', containerPath: '/etc/hosts', readOnly: true }] }),
      specHash: 'h',
      rootfsPath: '/r/rootfs',
      cgroupsPath: '/a/b',
      hostNofileHard: 1024,
      swapAccounting: false,
      network: { netnsPath: '/run/x/netns/default_web', etcFiles },
    });
    assert.deepEqual(
      cfg.linux.namespaces.find((n) => n.type === 'network'),
      { type: 'network', path: '/run/x/netns/default_web' },
    );
    const dests = cfg.mounts.map((m) => `${m.destination}<-${m.source}`);
    assert.ok(dests.indexOf('/etc/hosts<-/r/etc/hosts') < dests.indexOf('/etc/hosts<-/srv/hosts'), 'a user mount over /etc/hosts wins');
    assert.ok(dests.includes('/etc/resolv.conf<-/r/etc/resolv.conf'));
    for (const f of Object.values(etcFiles))
      assert.ok(cfg.mounts.find((m) => m.source === f)?.options?.includes('ro'), `${f} is bound read-only: it is outside the private area and its disk limit`);
  });
});
