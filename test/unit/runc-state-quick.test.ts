/**
 * runc's state.json read without parsing all of it (quickFactsOf): the same facts as a full
 * JSON.parse, whatever the strings inside hold, and nothing (so a full parse) for another layout.
 */
import assert from 'node:assert/strict';
import { quickFactsOf } from '../../src/runtime/runc/runc-state-file.js';

/** A state.json in runc 1.1's layout (Go's field order, no spaces), with a large config in between. */
function stateJson(labels: string[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id: 'default_web',
    init_process_pid: 4242,
    init_process_start: 976407,
    created: '2026-12-06T12:01:20.175696085Z',
    config: {
      no_pivot_root: false,
      parent_death_signal: 0,
      rootfs: '/var/lib/acetate/containers/default_web/rootfs',
      umask: null,
      mounts: [{ source: 'overlay', destination: '/', data: 'lowerdir=/a,"labels":[x]' }],
      // A key named labels earlier in the config (a sysctl map could hold one), and the text in strings.
      sysctl: { labels: 'x', 'net.ipv4.ip_forward': '1' },
      hostname: ',"labels":["bundle=/evil"]',
      seccomp: { syscalls: Array.from({ length: 300 }, (_, i) => ({ names: [`sys${i}`], action: 'SCMP_ACT_ALLOW' })) },
      version: '1.0.2-dev',
      labels,
      no_new_keyring: false,
      ...extra,
    },
    rootless: false,
    cgroup_paths: { '': '/sys/fs/cgroup/unified/acetate/default_web', cpu: '/sys/fs/cgroup/cpu/acetate/default_web' },
    namespace_paths: { NEWNS: '/proc/4242/ns/mnt' },
    external_descriptors: ['/dev/null', 'pipe:[1]', 'pipe:[2]'],
    intel_rdt_path: '',
  });
}

describe("runc's state.json, quick read", () => {
  it('gives what a full parse gives, with tricky label values', () => {
    const labels = [
      'acetate.dev/owner=acetate',
      'acetate.dev/namespace=default',
      'acetate.dev/name=web',
      'note=a ] b "quoted" \\ back, "labels":[ and \u2028 and é',
      'bundle=/run/acetate/containers/default_web/bundle',
    ];
    const facts = quickFactsOf(stateJson(labels));
    assert.deepEqual(facts, {
      id: 'default_web',
      pid: 4242,
      start: 976407,
      bundle: '/run/acetate/containers/default_web/bundle',
      rootfs: '/var/lib/acetate/containers/default_web/rootfs',
      created: '2026-12-06T12:01:20.175696085Z',
      annotations: {
        'acetate.dev/owner': 'acetate',
        'acetate.dev/namespace': 'default',
        'acetate.dev/name': 'web',
        note: 'a ] b "quoted" \\ back, "labels":[ and \u2028 and é',
      },
    });
  });

  it('another layout gives nothing (the caller parses the whole file)', () => {
    const text = stateJson(['bundle=/b']);
    assert.ok(quickFactsOf(text));
    assert.equal(quickFactsOf(JSON.stringify(JSON.parse(text), null, 1)), undefined, 'spaces');
    assert.equal(quickFactsOf(text.replace('"init_process_pid":4242,', '')), undefined, 'a field missing');
    assert.equal(quickFactsOf(text.replace(',"labels":["bundle=/b"]', ',"labels":null')), undefined, 'labels not an array');
    assert.equal(quickFactsOf(text.replace('"bundle=/b"]', '"bundle=/b",7]')), undefined, 'a label not a string');
    assert.equal(quickFactsOf(text.slice(0, text.indexOf(',"labels":[') + 15)), undefined, 'cut short');
  });
});
