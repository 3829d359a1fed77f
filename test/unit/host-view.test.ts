/** The host template's view (host-masks.ts) from a node listing, and dpkg's lists (dpkg-owned.ts). */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostView, lockedCopy, type HostViewOptions, type NodeEntry } from '../../src/runtime/walls/host-masks.js';
import { ownedEntries, packageOwned } from '../../src/runtime/walls/dpkg-owned.js';
import { factsStore } from '../../src/runtime/walls/node-facts.js';
import { idList, parseIdSetting, statoverrideIds } from '../../src/runtime/walls/host-ids.js';

/** dpkg list files as Debian 12 ships them (abridged). */
const LISTS: Record<string, string> = {
  'dpkg.list': '/.\n/var\n/var/lib\n/var/lib/dpkg\n/var/lib/dpkg/alternatives\n/var/lib/dpkg/info\n/usr/bin/dpkg\n',
  'apt.list': '/.\n/var/cache/apt\n/var/cache/apt/archives\n/var/lib/apt\n/var/lib/apt/lists\n/usr/bin/apt-get\n',
  'postgresql-common.list': '/.\n/var/lib/postgresql\n/var/log/postgresql\n/usr/bin/pg_lsclusters\n',
  'docker.io.list': '/.\n/var/lib/docker\n/usr/bin/dockerd\n',
  'google-chrome-stable.list': '/.\n/opt/google/chrome/chrome\n/opt/google/chrome/locales\n',
  'debconf.list': '/.\n/var/cache/debconf\n/var/cache/debconf/templates.dat\n',
  'git.list': '/.\n/var/lib/git\n/usr/bin/git\n',
};

const dir = (name: string, uid = 0, mode = 0o40755): NodeEntry => ({ name, type: 'dir', uid, mode });
const file = (name: string, uid = 0, mode = 0o100644): NodeEntry => ({ name, type: 'file', uid, mode });
const link = (name: string): NodeEntry => ({ name, type: 'symlink', uid: 0, mode: 0o120777 });

const listing = new Map<string, NodeEntry[]>([
  ['/', ['bin', 'usr', 'etc', 'var', 'opt', 'home', 'root', 'srv', 'tmp', 'run', 'boot', 'data'].map((n) => (n === 'bin' ? link(n) : dir(n)))],
  ['/var', [dir('lib'), dir('cache'), dir('log'), link('run'), dir('www'), dir('spool')]],
  [
    '/var/lib',
    [
      dir('dpkg'),
      dir('apt'),
      dir('postgresql', 105),
      dir('mysql', 106, 0o40700),
      dir('docker', 0, 0o40710),
      dir('myservice', 0, 0o40700),
      dir('acetate', 0, 0o40700),
      dir('git'),
      file('shells.state'),
    ],
  ],
  ['/var/lib/git', [dir('site-repo.git')]],
  ['/usr/local', [dir('bin'), dir('cuda-13.0')]],
  ['/var/lib/dpkg', [file('status'), file('lock', 0, 0o100640), dir('info')]],
  ['/var/lib/apt', [dir('lists')]],
  ['/var/cache', [dir('apt'), dir('debconf'), dir('private', 0, 0o40700)]],
  ['/var/cache/debconf', [file('config.dat'), file('passwords.dat', 0, 0o100600)]],
  ['/opt', [dir('google'), dir('app', 0, 0o40700)]],
  ['/etc/ssh', [file('ssh_host_ed25519_key', 0, 0o100600), file('ssh_host_ed25519_key.pub'), file('sshd_config')]],
]);

const base: HostViewOptions = { stateDir: '/var/lib/acetate', runDir: '/run/acetate', packageOwned: ownedEntries(Object.values(LISTS)) };
const kindOf = (v: ReturnType<typeof hostView>, p: string) => v.entries.find((e) => e.path === p)?.action.kind;
const shown = (v: ReturnType<typeof hostView>, p: string) => v.shown.find((s) => s.path === p);

describe('dpkg-owned entries', () => {
  // Second-level entries too since F7 (inside a package's dir only what packages installed is shown).
  it('takes the first- and second-level entries of /var/lib, /var/cache, /opt and /usr/local from the list files, nothing else', () => {
    assert.deepEqual([...ownedEntries(Object.values(LISTS))].sort(), [
      '/opt/google',
      '/opt/google/chrome',
      '/var/cache/apt',
      '/var/cache/apt/archives',
      '/var/cache/debconf',
      '/var/cache/debconf/templates.dat',
      '/var/lib/apt',
      '/var/lib/apt/lists',
      '/var/lib/docker',
      '/var/lib/dpkg',
      '/var/lib/dpkg/alternatives',
      '/var/lib/dpkg/info',
      '/var/lib/git',
      '/var/lib/postgresql',
    ]);
  });

  it('reads /var/lib/dpkg/info/*.list once per change of dpkg status; no dpkg: undefined (the fixed list applies)', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'acetate-dpkg-'));
    try {
      const info = path.join(root, 'var/lib/dpkg/info');
      // The state dir's cache (no node-wide dir: node-facts.test.ts covers that one).
      const cache = factsStore(root, '', path.join(root, 'cache'));
      assert.equal(await packageOwned(root, cache), undefined);
      await mkdir(info, { recursive: true });
      for (const [n, t] of Object.entries(LISTS)) await writeFile(path.join(info, n), t);
      await writeFile(path.join(root, 'var/lib/dpkg/status'), '');
      const first = await packageOwned(root, cache);
      assert.ok(first?.has('/var/lib/postgresql') && !first.has('/var/lib/mysql'));
      // A package installed: a new list, status rewritten (a later mtime) → read again.
      await writeFile(path.join(info, 'mysql-server.list'), '/.\n/var/lib/mysql\n');
      const later = new Date(Date.now() + 5000);
      await utimes(path.join(root, 'var/lib/dpkg/status'), later, later);
      assert.ok((await packageOwned(root, cache))?.has('/var/lib/mysql'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('host template view', () => {
  const v = hostView(listing, base);

  it('shows OS dirs and what packages own (root, readable by all); hides service data, unowned and private entries', () => {
    for (const p of ['/usr', '/etc', '/bin', '/var/lib/dpkg', '/var/lib/apt', '/var/cache/apt', '/var/cache/debconf', '/opt/google'])
      assert.ok(shown(v, p), `${p} shown`);
    assert.equal(shown(v, '/var/lib/dpkg')!.source, 'dpkg');
    assert.equal(shown(v, '/usr')!.source, 'FHS');
    const absent: [string, RegExp][] = [
      ['/var/lib/postgresql', /owned by uid 105/],
      ['/var/lib/mysql', /no installed package/],
      ['/var/lib/myservice', /no installed package/],
      ['/var/lib/docker', /docker's images/],
      ['/var/lib/shells.state', /no installed package/],
      ['/var/cache/private', /no installed package/],
      ['/opt/app', /no installed package/],
      ['/data', /not an OS dir/],
      ['/boot', /not an OS dir/],
      ['/var/www', /not an OS dir/],
      ['/var/cache/debconf/passwords.dat', /only by its owner/],
      ['/etc/ssh/ssh_host_ed25519_key', /ssh host private keys/],
      ['/var/lib/acetate', /./],
    ];
    for (const [p, why] of absent) {
      const e = v.entries.find((x) => x.path === p);
      assert.equal(e?.action.kind, 'absent', `${p} absent`);
      assert.match(e.why, why, p);
    }
    assert.equal(kindOf(v, '/var/lib/dpkg/lock'), undefined, 'a group-readable lock stays (apt-get needs it)');
    assert.equal(kindOf(v, '/etc/ssh/ssh_host_ed25519_key.pub'), undefined);
    for (const p of ['/home', '/root', '/srv', '/tmp', '/var/log', '/var/spool']) assert.equal(kindOf(v, p), 'empty', p);
    assert.equal(kindOf(v, '/etc/machine-id'), 'machine-id');
    assert.equal(kindOf(v, '/etc/shadow'), 'locked-copy');
    assert.deepEqual(
      v.tmpfs.map((t) => t.path),
      ['/run'],
    );
  });

  it('lists parents before children and nothing under an entry already hidden', () => {
    const depth = v.entries.map((e) => e.path.split('/').length);
    assert.deepEqual(
      depth,
      [...depth].sort((a, b) => a - b),
    );
    const h = hostView(listing, { ...base, hide: ['/var/lib/dpkg', '/var/lib/dpkg/status'] });
    assert.equal(kindOf(h, '/var/lib/dpkg'), 'absent');
    assert.equal(kindOf(h, '/var/lib/dpkg/status'), undefined);
  });

  it("is adjustable per node: SHOW opens an emptied place or an entry, HIDE hides more; acetate's own dirs stay hidden", () => {
    const a = hostView(listing, { ...base, show: ['/srv', '/opt/app', '/var/lib/acetate', '/etc/ssh/ssh_host_ed25519_key'], hide: ['/usr/share/doc'] });
    assert.equal(kindOf(a, '/srv'), undefined);
    assert.equal(shown(a, '/srv')!.source, 'node setting');
    assert.ok(shown(a, '/opt/app'));
    assert.equal(kindOf(a, '/opt/app'), undefined);
    assert.equal(kindOf(a, '/etc/ssh/ssh_host_ed25519_key'), undefined);
    assert.equal(kindOf(a, '/usr/share/doc'), 'absent');
    assert.equal(kindOf(a, '/var/lib/acetate'), 'absent', 'the state dir cannot be shown');
  });

  it("F7: inside a package's dir only what packages installed; the package manager's state whole; SHOW opens one whole", () => {
    assert.ok(shown(v, '/var/lib/git'));
    const e = v.entries.find((x) => x.path === '/var/lib/git/site-repo.git');
    assert.equal(e?.action.kind, 'absent');
    assert.match(e.why, /no package installed it/);
    assert.equal(kindOf(v, '/var/lib/dpkg/status'), undefined, "dpkg's own state (listed by no package) is shown");
    assert.equal(kindOf(v, '/var/cache/debconf/config.dat'), undefined);
    assert.equal(kindOf(hostView(listing, { ...base, show: ['/var/lib/git'] }), '/var/lib/git/site-repo.git'), undefined);
  });

  it('F4: /usr/local shows only what packages own; owner-only entries of /etc at any depth are absent; F8: other instances absent', () => {
    assert.equal(kindOf(v, '/usr/local/bin'), 'absent');
    assert.equal(kindOf(v, '/usr/local/cuda-13.0'), 'absent');
    const w = hostView(listing, {
      ...base,
      ownerOnly: [{ path: '/etc/app/deep/key.pem', mode: 0o600 }],
      instances: [{ stateDir: '/tmp/x/state', runDir: '/tmp/x/run' }],
      show: ['/tmp'],
    });
    assert.equal(kindOf(w, '/etc/app/deep/key.pem'), 'absent');
    assert.equal(kindOf(w, '/tmp/x/state'), 'absent');
    assert.equal(kindOf(w, '/tmp/x/run'), 'absent');
  });

  it('without dpkg, the fixed list of OS state decides', () => {
    const f = hostView(listing, { ...base, packageOwned: undefined });
    assert.equal(shown(f, '/var/lib/dpkg')!.source, 'fixed list');
    assert.equal(kindOf(f, '/var/lib/postgresql'), 'absent');
    assert.equal(kindOf(f, '/opt/google'), 'absent');
  });

  it('locks every password of a shadow file, keeping the accounts', () => {
    assert.equal(
      lockedCopy('root:$y$j9T$abc:19000:0:99999:7:::\nsvc:!:19000::::::\nu::1::::::\n'),
      'root:*:19000:0:99999:7:::\nsvc:!:19000::::::\nu:*:1::::::\n',
    );
  });
});

describe('host template ids in a user namespace (host-ids.ts)', () => {
  it('maps the static system ids, nobody and the owners dpkg-statoverride gives OS files; not a service data dir owner', () => {
    const so =
      'root ssl-cert 710 /etc/ssl/private\nroot messagebus 4754 /usr/lib/dbus-1.0/dbus-daemon-launch-helper\npostgres postgres 700 /var/lib/postgresql/x\n';
    const ids = statoverrideIds(so, 'root:x:0:0::/root:/bin/sh\npostgres:x:101:104::/:/bin/sh\n', 'ssl-cert:x:103:\nmessagebus:x:102:\npostgres:x:104:\n');
    assert.deepEqual(ids, { users: [0, 0], groups: [103, 102] });
    assert.equal(idList([0, 1, 2, 5, 102, 103, 65534]), '0-2,5,102-103,65534');
    assert.deepEqual(parseIdSetting('1000, 2000-2002', 'ACETATE_HOST_IDS'), [1000, 2000, 2001, 2002]);
    assert.throws(() => parseIdSetting('70000', 'ACETATE_HOST_IDS'), /ACETATE_HOST_IDS: '70000'/);
  });
});
