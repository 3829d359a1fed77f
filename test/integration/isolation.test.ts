/**
 * Isolation (issue 11), checked from inside real containers the way an attacker would try:
 * the host template shows the node's OS but not its data (secrets, acetate's dirs, neighbours'
 * private areas and logs, the node's Unix sockets); Docker's seccomp profile is on by default;
 * user namespaces map the container's root to an unprivileged node range and keep its data across
 * restart, replace and a change of the setting; hostPath ancestors of the state/run dir are refused.
 */
import assert from 'node:assert/strict';
import { chown, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { flatContainers, type FlatContainer } from '../support/get.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { ownPool, POOL_SLOTS } from '../support/own-pool.js';

/** This file's own pool: containers of test files running beside it hold the default pool's first ranges. */
const OWN = ownPool(POOL_SLOTS.isolation);
/** The range the first unprivileged container of a state dir gets: the pool's first. */
const FIRST_RANGE = OWN.first;
import { makeRuntime } from '../support/tmp-state.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { shellManifest } from '../support/manifest.js';
import { procStatus } from '../support/proc.js';

const manifest = (name: string, command: string, spec = '', template = 'host'): string => shellManifest(name, { command, spec, template });

describe('isolation (real runc)', function () {
  this.timeout(120_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  const env = () => ({ ACETATE_RUN_DIR: runDir, ...OWN.env });
  const cli = (args: string[]) => runCli(args, { stateDir, env: env() });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const logs = async (name: string) => (await cli(['logs', name])).stdout;
  const waitLog = (name: string, text: string) => waitFor(async () => (await logs(name)).includes(text), { what: `${name} logs '${text}'`, timeoutMs: 30_000 });
  const get = async (name: string): Promise<FlatContainer> => {
    const r = await cli(['get', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const c = flatContainers(r.stdout).find((x) => x.name === name);
    assert.ok(c, `${name} not listed`);
    return c;
  };

  beforeEach(async () => {
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-iso-', { userns: true }));
  });
  afterEach(() => destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply }));

  describe('the host template shows the OS, not the node data', () => {
    it("hides /etc/shadow, /root, acetate's dirs and a neighbour's private area and log; the OS still works", async () => {
      const secret = `password=s3cret-${process.pid}`;
      await writeFile(path.join(dir, 'victim.yaml'), manifest('victim', `echo ${secret}; echo ${secret} > /victim-data; exec sleep 1000000`));
      assert.equal((await apply()).code, 0);
      await waitLog('victim', secret);
      const victimUpper = path.join(stateDir, 'containers', 'default_victim', 'upper', 'victim-data');
      const victimLog = path.join(stateDir, 'containers', 'default_victim', 'container.log');
      assert.match(await readFile(victimUpper, 'utf8'), /s3cret/, 'the neighbour wrote its private area');
      const probe = [
        // The container's own copies: the accounts, every password locked (no hash).
        'for p in /etc/shadow /etc/gshadow; do if grep -q \'^[^:]*:[^:*!]\' $p; then echo "READ $p"; fi; done',
        `for p in ${stateDir} ${runDir} ${victimUpper} ${victimLog} ${path.join(stateDir, 'containers')}; do if [ -e $p ]; then echo "SEEN $p"; fi; done`,
        'if [ -n "$(ls -A /root)" ]; then echo "SEEN /root: $(ls -A /root)"; fi',
        'if [ -n "$(ls -A /run)" ]; then echo "SEEN /run: $(ls -A /run)"; fi',
        `grep -rl s3cret-${process.pid} /var/log /var/tmp /var/lib/acetate /srv /mnt /home /root /tmp /run 2>/dev/null | sed 's/^/FOUND /'`,
        '. /etc/os-release && echo "os=$ID"',
        '/usr/bin/env true && ls /lib >/dev/null && echo programs-work',
        'echo tmp > /tmp/t && echo run > /run/r && cat /tmp/t /run/r',
        'echo probe-done; exec sleep 1000000',
      ].join('; ');
      await writeFile(path.join(dir, 'probe.yaml'), manifest('probe', probe));
      assert.equal((await apply()).code, 0);
      await waitLog('probe', 'probe-done');
      const out = await logs('probe');
      assert.doesNotMatch(out, /READ |SEEN |FOUND /, out);
      assert.match(out, /os=\w+/, 'os-release readable');
      assert.match(out, /programs-work/);
      assert.match(out, /tmp\s+run/, 'private /tmp and /run are writable');
      // The describe command lists what is hidden (this test's state and run dirs are under /tmp, shown empty).
      const d = await cli(['template', 'describe', 'host']);
      assert.equal(d.code, 0, d.stderr);
      for (const p of [/^\/etc\/shadow\s+own copy, locked/m, /^\/root\s+empty/m, /^\/tmp\s+empty/m, /^\/run\s+private/m, /^\/var\/lib\/acetate\s+absent/m])
        assert.match(d.stdout, p);
    });

    it('is adjustable per node: ACETATE_HOST_HIDE hides more, ACETATE_HOST_SHOW shows a default entry', async () => {
      const shown = `/srv/acetate-iso-${process.pid}`;
      await writeFile(shown, 'shown\n');
      try {
        const extra = { ACETATE_HOST_HIDE: '/usr/share/doc', ACETATE_HOST_SHOW: '/srv' };
        const run = (args: string[]) => runCli(args, { stateDir, env: { ...env(), ...extra } });
        await writeFile(
          path.join(dir, 'adj.yaml'),
          manifest('adj', `echo "doc=$(ls -A /usr/share/doc | wc -l)"; cat ${shown}; echo adj-done; exec sleep 1000000`),
        );
        assert.equal((await run(['apply', '-f', dir])).code, 0);
        await waitLog('adj', 'adj-done');
        const out = await logs('adj');
        assert.match(out, /doc=0\b/, out);
        assert.match(out, /^shown$/m, out);
        const d = await run(['template', 'describe', 'host']);
        assert.match(d.stdout, /^\/usr\/share\/doc\s+absent\s+node setting/m);
        assert.match(d.stdout, /^\/srv\s+shown\s+node setting/m);
      } finally {
        await rm(shown, { force: true });
      }
    });

    it("with ACETATE_HOST_SHOW=/tmp another acetate instance's state and run dirs there are still absent", async () => {
      const other = await mkdtemp('/tmp/acetate-other-');
      const otherState = path.join(other, 'state');
      const otherRun = path.join(other, 'run');
      const otherDir = path.join(other, 'manifests');
      await mkdir(otherDir);
      try {
        // The other instance has been used (apply took its lock): its dirs are on the node.
        const o = await runCli(['apply', '-f', otherDir, '--allow-empty'], { stateDir: otherState, env: { ACETATE_RUN_DIR: otherRun } });
        assert.equal(o.code, 0, o.stderr);
        await writeFile(path.join(otherState, 'private-note'), 'other-instance-data\n');
        const extra = { ACETATE_HOST_SHOW: '/tmp' };
        const run = (args: string[]) => runCli(args, { stateDir, env: { ...env(), ...extra } });
        const probe = `ls -A ${other}; for p in ${otherState} ${otherRun}; do [ -e $p ] && echo "SEEN $p"; done; grep -rls "other-instance-dat[a]" /tmp | sed "s/^/FOUND /"; echo probe-done; exec sleep 1000000`;
        await writeFile(path.join(dir, 'show.yaml'), manifest('show', probe));
        assert.equal((await run(['apply', '-f', dir])).code, 0);
        await waitLog('show', 'probe-done');
        const out = await logs('show');
        assert.match(out, /manifests/, `the other root's plain dir is shown (/tmp is): ${out}`);
        assert.doesNotMatch(out, /SEEN |FOUND/, out);
        const d = await run(['template', 'describe', 'host']);
        assert.match(d.stdout, new RegExp(`^${otherState}\\s+absent\\s+acetate\\s+another acetate instance's state dir`, 'm'));
      } finally {
        await rm(other, { recursive: true, force: true });
      }
    });

    it("a service's data under /var/lib and an app under /opt are neither listed nor readable; the OS and dpkg work; describe names both", async () => {
      const tag = `acetate-iso-${process.pid}-${Date.now()}`;
      const service = `/var/lib/${tag}`;
      const app = `/opt/${tag}`;
      const siteRepo = `/var/lib/git/${tag}.git`;
      const local = `/usr/local/${tag}`;
      const etcDir = `/etc/${tag}`;
      // An owner-only file below the first level of a package manager's state (shown whole but for such).
      const aptDeep = `/var/lib/apt/${tag}`;
      const secret = `s3cret-${tag}`;
      try {
        for (const d of [service, app]) {
          await mkdir(d, { mode: 0o700 });
          await writeFile(path.join(d, 'secret.conf'), `${secret}\n`, { mode: 0o600 });
        }
        // F7: site data inside a package's dir (git ships /var/lib/git); F4: /usr/local, an owner-only file deep in /etc.
        await mkdir(siteRepo, { mode: 0o755 });
        await writeFile(path.join(siteRepo, 'secret.conf'), `${secret}\n`, { mode: 0o644 });
        await writeFile(local, `${secret}\n`, { mode: 0o644 });
        await mkdir(etcDir, { mode: 0o755 });
        await writeFile(path.join(etcDir, 'key.pem'), `${secret}\n`, { mode: 0o600 });
        await mkdir(path.join(aptDeep, 'sub'), { recursive: true, mode: 0o755 });
        await writeFile(path.join(aptDeep, 'sub', 'secret.conf'), `${secret}\n`, { mode: 0o600 });
        const probe = [
          `ls -A /var/lib /opt /var/lib/git /usr/local | grep -q ${tag} && echo LISTED`,
          `cat ${service}/secret.conf ${app}/secret.conf ${siteRepo}/secret.conf ${local} ${etcDir}/key.pem ${aptDeep}/sub/secret.conf 2>/dev/null | grep -q ${secret} && echo READ`,
          `grep -rqs ${secret} /var/lib /opt /usr/local /etc && echo FOUND`,
          `[ -d /usr/local ] && [ -d ${etcDir} ] && [ -d ${aptDeep}/sub ] && echo dirs-kept`,
          '/usr/bin/env true && ls /lib >/dev/null && . /etc/os-release && echo "os=$ID"',
          'echo "packages=$(dpkg -l | grep -c ^ii)"',
          // The package database is the container's own copy: writable, the node's untouched.
          `touch /var/lib/dpkg/${tag} && apt-get check >/dev/null 2>&1 && echo apt-ok`,
          'echo probe-done; exec sleep 1000000',
        ].join('; ');
        await writeFile(path.join(dir, 'data.yaml'), manifest('data', probe));
        assert.equal((await apply()).code, 0);
        await waitLog('data', 'probe-done');
        const out = await logs('data');
        assert.doesNotMatch(out, /LISTED|READ|FOUND/, out);
        assert.match(out, /dirs-kept/, out);
        assert.match(out, /os=debian/, out);
        assert.ok(Number(/packages=(\d+)/.exec(out)?.[1]) > 50, out);
        assert.match(out, /apt-ok/, out);
        await assert.rejects(stat(`/var/lib/dpkg/${tag}`), 'the write stayed in the container');
        const d = await cli(['template', 'describe', 'host']);
        assert.equal(d.code, 0, d.stderr);
        assert.match(d.stdout, new RegExp(`^${service}\\s+absent\\s+dpkg\\s+no installed package owns it`, 'm'));
        assert.match(d.stdout, new RegExp(`^${app}\\s+absent\\s+dpkg`, 'm'));
        assert.match(d.stdout, /^\/var\/lib\/dpkg\s+shown\s+dpkg\s+installed by a package/m);
        assert.match(d.stdout, /^\/usr\s+shown\s+FHS/m);
        assert.match(d.stdout, new RegExp(`^${siteRepo}\\s+absent\\s+dpkg\\s+in a package's dir`, 'm'));
        assert.match(d.stdout, new RegExp(`^${etcDir}/key.pem\\s+absent\\s+default\\s+mode 0600`, 'm'));
        assert.match(d.stdout, new RegExp(`^${aptDeep}/sub/secret.conf\\s+absent\\s+default\\s+mode 0600`, 'm'));
      } finally {
        for (const p of [service, app, siteRepo, local, etcDir, aptDeep]) await rm(p, { recursive: true, force: true });
      }
    });

    it("node data made after the start (a service user's 0700 dir, root's 0700 dirs in /opt, at / and in /etc) is hidden from running containers while `run` runs", async () => {
      const tag = `acetate-live-${process.pid}-${Date.now()}`;
      // uid 991: a dynamic system id (100-999), as adduser --system gives a service; no account is needed for ownership.
      const made = [
        { path: `/var/lib/${tag}-svc`, uid: 991 },
        { path: `/opt/${tag}-app`, uid: 0 },
        { path: `/${tag}-top`, uid: 0 },
        // /etc is shown: its owner-only entries are hidden (etc-walk.ts), and run watches every dir of it.
        { path: `/etc/${tag}-etc`, uid: 0 },
      ];
      const secret = `s3cret-${tag}`;
      // The tenant polls the names every 50 ms from before they exist (reads close at once: no fd is held).
      const poll = made
        .map(
          (m, i) =>
            `cat ${m.path}/secret.conf 2>/dev/null | grep -q ${secret} && echo "READ-${i} $(date +%s%3N)"; ls -A ${path.dirname(m.path)} | grep -q ${tag} && echo "LISTED-${i} $(date +%s%3N)"`,
        )
        .join('; ');
      const cmd = `echo up; i=0; while true; do ${poll}; i=$((i+1)); echo "tick $i"; sleep 0.05; done`;
      await writeFile(path.join(dir, 'un.yaml'), manifest('un', cmd, '  securityContext: { hostUsers: false }\n'));
      await writeFile(path.join(dir, 'nd.yaml'), manifest('nd', cmd, '  securityContext: { hostUsers: true }\n'));
      const run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir, env: env() });
      try {
        await waitLog('un', 'tick 2');
        await waitLog('nd', 'tick 2');
        const t0 = Date.now();
        for (const m of made) {
          await mkdir(m.path, { mode: 0o700 });
          await writeFile(path.join(m.path, 'secret.conf'), `${secret}\n`, { mode: 0o600 });
          await chown(path.join(m.path, 'secret.conf'), m.uid, m.uid);
          await chown(m.path, m.uid, m.uid);
        }
        const probe = `ls -A /var/lib /opt / /etc | grep ${tag}; cat ${made.map((m) => `${m.path}/secret.conf`).join(' ')} 2>/dev/null; echo probed`;
        for (const name of ['un', 'nd']) {
          await waitFor(
            async () => {
              const r = await cli(['exec', name, '--', 'sh', '-c', probe]);
              return r.code === 0 && r.stdout.trim() === 'probed';
            },
            { what: `${name}: the new dirs neither listed nor readable`, timeoutMs: 10_000, intervalMs: 50 },
          );
        }
        // How long each was seen from inside (the container's own clock is the node's).
        for (const name of ['un', 'nd']) {
          const out = await logs(name);
          const last = (kind: string) => Math.max(0, ...[...out.matchAll(new RegExp(`${kind}-\\d (\\d+)`, 'g'))].map((m) => Number(m[1]) - t0));
          console.log(`      ${name}: last listed ${last('LISTED')} ms, last read ${last('READ')} ms after the node began making them (0: never)`);
        }
        // The poller (which may have looked a root-owned name up before its marker) reads no more.
        for (const name of ['un', 'nd']) {
          const reads = (await logs(name)).match(/READ-/g)?.length ?? 0;
          const tick = Number([...(await logs(name)).matchAll(/tick (\d+)/g)].pop()?.[1]);
          await waitLog(name, `tick ${tick + 10}`);
          assert.equal((await logs(name)).match(/READ-/g)?.length ?? 0, reads, `${name} still reads the node's new data`);
        }
        // A user-namespaced container's root never read the service's data, not even before its marker:
        // the service's id is not mapped into its view of the node (host-ids.ts).
        assert.doesNotMatch(await logs('un'), /READ-0/);
      } finally {
        await run.stop();
        for (const m of made) await rm(m.path, { recursive: true, force: true });
      }
    });

    it("each container has its own machine-id, not the node's nor its neighbour's, kept across a restart", async () => {
      const node = (await readFile('/etc/machine-id', 'utf8')).trim();
      const cmd = 'echo "mid=$(cat /etc/machine-id) dbus=$(cat /var/lib/dbus/machine-id 2>/dev/null)"; exec sleep 1000000';
      await writeFile(path.join(dir, 'm1.yaml'), manifest('m1', cmd));
      await writeFile(path.join(dir, 'm2.yaml'), manifest('m2', cmd));
      assert.equal((await apply()).code, 0);
      await waitLog('m1', 'mid=');
      await waitLog('m2', 'mid=');
      const idOf = async (n: string) => [...(await logs(n)).matchAll(/mid=(\S*)/g)].map((m) => m[1]!);
      const [a] = await idOf('m1');
      const [b] = await idOf('m2');
      assert.match(a!, /^[0-9a-f]{32}$/);
      assert.notEqual(a, node);
      assert.notEqual(a, b);
      assert.doesNotMatch(await logs('m1'), new RegExp(`dbus=${node}`), "D-Bus' copy is not the node's");
      const before = (await get('m1')).pid!;
      process.kill(before, 'SIGKILL');
      await cli(['apply', '-f', dir]);
      await waitFor(async () => (await get('m1')).pid !== before && (await get('m1')).phase === 'Running' && (await idOf('m1')).length > 0, {
        what: 'm1 restarted',
        timeoutMs: 30_000,
      });
      assert.deepEqual(new Set(await idOf('m1')), new Set([a]), 'the same id after the restart');
      assert.equal((await readFile(path.join(stateDir, 'containers', 'default_m1', 'machine-id'), 'utf8')).trim(), a, 'kept with the container');
    });

    it('no Unix socket of the node can be connected to from inside (/run, /tmp)', async () => {
      const sockets = [`/run/acetate-iso-${process.pid}.sock`, path.join(root, 'node.sock')];
      const servers = await Promise.all(
        sockets.map(
          (p) =>
            new Promise<net.Server>((resolve, reject) => {
              const s = net.createServer((c) => c.end('hello from the node\n'));
              s.once('error', reject);
              s.listen(p, () => resolve(s));
            }),
        ),
      );
      try {
        await writeFile(path.join(dir, 'sleeper.yaml'), manifest('sleeper', 'exec sleep 1000000')); // a neighbour
        assert.equal((await apply()).code, 0);
        // Every path socket the node has now, as the kernel lists them.
        const listed = (await readFile('/proc/net/unix', 'utf8'))
          .split('\n')
          .slice(1)
          .map((l) => l.trim().split(/\s+/)[7])
          .filter((p): p is string => !!p && p.startsWith('/') && !p.startsWith('/proc/'));
        for (const s of sockets) assert.ok(listed.includes(s), `${s} listed`);
        const paths = [...new Set(listed)].filter((p) => p.length < 100);
        const script = `const net=require('net');const ps=${JSON.stringify(paths)};let n=0;for(const p of ps){const c=net.connect(p);c.on('connect',()=>{console.log('CONNECTED '+p);c.destroy();if(++n===ps.length)console.log('sockets-done')});c.on('error',()=>{if(++n===ps.length)console.log('sockets-done')})}`;
        await writeFile(
          path.join(dir, 'sock.yaml'),
          manifest('sock', '/usr/bin/node -e "$SCRIPT"; exec sleep 1000000', `  env: [{ name: SCRIPT, value: ${JSON.stringify(script)} }]\n`),
        );
        assert.equal((await apply()).code, 0);
        await waitLog('sock', 'sockets-done');
        assert.doesNotMatch(await logs('sock'), /CONNECTED/, await logs('sock'));
      } finally {
        await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
        await rm(sockets[0]!, { force: true });
      }
    });
  });

  describe('seccomp', () => {
    it("Docker's profile by default (Seccomp: 2, unshare -Urm fails); Unconfined turns it off", async () => {
      const cmd = 'grep "^Seccomp:" /proc/self/status; if unshare -Urm true; then echo unshare-ok; else echo unshare-refused; fi; exec sleep 1000000';
      await writeFile(path.join(dir, 'def.yaml'), manifest('def', cmd));
      await writeFile(path.join(dir, 'unc.yaml'), manifest('unc', cmd, '  securityContext: { seccompProfile: { type: Unconfined } }\n'));
      assert.equal((await apply()).code, 0);
      await waitLog('def', 'unshare-');
      await waitLog('unc', 'unshare-');
      assert.match(await logs('def'), /Seccomp:\s+2[\s\S]*unshare-refused/);
      assert.match(await logs('unc'), /Seccomp:\s+0[\s\S]*unshare-ok/);
      const plan = await cli(['plan', '-f', dir]);
      assert.equal(plan.code, 0, plan.stderr);
    });

    it('Localhost reads a profile file from the node; a missing one is a clear error', async () => {
      await writeFile(
        path.join(dir, 'loc.yaml'),
        manifest(
          'loc',
          'echo started; exec sleep 1000000',
          '  securityContext: { seccompProfile: { type: Localhost, localhostProfile: /usr/share/containers/seccomp.json } }\n',
        ),
      );
      assert.equal((await apply()).code, 0);
      await waitLog('loc', 'started');
      assert.equal((await procStatus((await get('loc')).pid!)).Seccomp, '2');
      await writeFile(
        path.join(dir, 'loc.yaml'),
        manifest('loc', 'exec sleep 1000001', `  securityContext: { seccompProfile: { type: Localhost, localhostProfile: ${root}/missing.json } }\n`),
      );
      const r = await apply();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot read the seccomp profile .*missing\.json/);
      assert.equal((await get('loc')).phase, 'Running', 'the running container is kept');
    });
  });

  describe('user namespaces (hostUsers: false)', () => {
    it('maps root to the node range; files it writes belong to the range; data survives restart, replace and the setting going off', async () => {
      const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
      assert.equal((await cli(['template', 'import', 'bb', bb])).code, 0);
      const base = FIRST_RANGE.hostID;
      const upper = path.join(stateDir, 'containers', 'default_u', 'upper');
      const spec = '  securityContext: { hostUsers: false }\n';
      await writeFile(
        path.join(dir, 'u.yaml'),
        manifest('u', 'cat /proc/self/uid_map; echo run >> /data/runs; echo x > /bin/edited; echo ready; exec sleep 1000000', spec, 'bb').replace(
          'echo run',
          'mkdir -p /data; echo run',
        ),
      );
      const plan = await cli(['plan', '-f', dir]);
      assert.match(plan.stdout, /user namespace/, plan.stdout);
      assert.equal((await apply()).code, 0);
      await waitLog('u', 'ready');
      const map = (await logs('u')).split('\n').find((l) => /^\s*0\s+\d+\s+\d+\s*$/.test(l));
      assert.ok(map, 'uid_map printed');
      const [inside, host, size] = map.trim().split(/\s+/).map(Number);
      assert.deepEqual([inside, host, size], [0, base, FIRST_RANGE.size], `uid_map ${map}`);
      assert.notEqual(host, 0);
      const st = await stat(path.join(upper, 'data', 'runs'));
      assert.equal(st.uid, base, 'a file created inside belongs to the range on the node');
      assert.equal((await stat(path.join(upper, 'bin', 'edited'))).uid, base, 'a template dir is writable (the template is shifted)');
      const pid = (await get('u')).pid!;
      assert.equal((await procStatus(pid)).Uid.split(/\s+/)[0], String(base), 'the process runs as the range root on the node');
      // Restart: the process dies, the restart policy starts it again with its data.
      process.kill(pid, 'SIGKILL');
      await cli(['apply', '-f', dir]);
      await waitFor(async () => (await readFile(path.join(upper, 'data', 'runs'), 'utf8')).split('\n').filter(Boolean).length >= 2, {
        what: 'second run wrote',
        timeoutMs: 30_000,
      });
      // Replace (another command), the private area kept.
      await writeFile(
        path.join(dir, 'u.yaml'),
        manifest('u', 'cat /data/runs | wc -l | sed s/^/runs=/; echo run >> /data/runs; exec sleep 1000001', spec, 'bb'),
      );
      assert.equal((await apply()).code, 0);
      await waitLog('u', 'runs=');
      assert.match(await logs('u'), /runs=\s*2/);
      // The setting goes off: the plan says the private area is re-owned; the data is kept and usable.
      await writeFile(
        path.join(dir, 'u.yaml'),
        manifest('u', 'cat /data/runs | wc -l | sed s/^/after=/; echo run >> /data/runs; exec sleep 1000002', '', 'bb'),
      );
      const off = await cli(['plan', '-f', dir]);
      assert.match(
        off.stdout,
        new RegExp(`user namespace: ids ${FIRST_RANGE.hostID}–${FIRST_RANGE.hostID + RANGE_SIZE - 1} → node root, the private area's files are re-owned`),
        off.stdout,
      );
      assert.equal((await apply()).code, 0);
      await waitLog('u', 'after=');
      assert.match(await logs('u'), /after=\s*3/);
      assert.equal((await stat(path.join(upper, 'data', 'runs'))).uid, 0, 'owned by the node root again');
      assert.match(await readFile(path.join(upper, 'data', 'runs'), 'utf8'), /^(run\n){4}$/);
    });

    // Was: it started (the node's /sys bound read-only). Kubernetes refuses hostNetwork with
    // hostUsers: false, and so does acetate now that the user namespace is the default (issue 23).
    it('with network: host it is refused, naming the field and hostUsers: true', async () => {
      const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
      assert.equal((await cli(['template', 'import', 'bb', bb])).code, 0);
      await writeFile(path.join(dir, 'hn.yaml'), manifest('hn', 'exec sleep 1000000', '  network: host\n  securityContext: { hostUsers: false }\n', 'bb'));
      const r = await apply();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /spec\.network: host needs securityContext\.hostUsers: true, not false/);
    });
  });

  describe('hostPath', () => {
    it('an ancestor of the state or run dir is refused, naming the field; so is a symlink to one, at start', async () => {
      for (const [i, hostPath] of ['/', root, path.dirname(root)].entries()) {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await writeFile(
          path.join(dir, `a${i}.yaml`),
          manifest(`a${i}`, 'exec sleep 1000000', `  mounts: [{ hostPath: ${hostPath}, containerPath: /mnt/x }]\n`),
        );
        const r = await apply();
        assert.equal(r.code, 1, `${hostPath} accepted:\n${r.stdout}`);
        assert.match(r.stderr, /spec\.mounts\[0\]\.hostPath: .* contains acetate's (state|run) dir/, r.stderr);
      }
      // A symlink that is harmless when applied, then made to point at an ancestor: refused at start.
      const link = path.join(root, 'link');
      const harmless = await mkdtemp('/tmp/acetate-iso-data-');
      try {
        await symlink(harmless, link);
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await writeFile(path.join(dir, 'l.yaml'), manifest('l', 'exec sleep 1000000', `  mounts: [{ hostPath: ${link}, containerPath: /mnt/x }]\n`));
        assert.equal((await apply()).code, 0);
        await rm(link);
        await symlink(root, link);
        const pid = (await get('l')).pid!;
        process.kill(pid, 'SIGKILL');
        await waitFor(async () => (await cli(['apply', '-f', dir])).stderr.match(/symlink to .* contains acetate's/), {
          what: 'the restart refused',
          timeoutMs: 30_000,
        });
        assert.notEqual((await get('l')).phase, 'Running');
      } finally {
        await rm(harmless, { recursive: true, force: true });
        await lstat(link).then(
          () => rm(link),
          () => undefined,
        );
      }
    });

    it('the runtime refuses at start a hostPath symlink that came to point at an ancestor after the create', async () => {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const rt = makeRuntime(stateDir, { runDir });
      const link = path.join(root, 'later');
      const harmless = await mkdtemp('/tmp/acetate-iso-data-');
      try {
        await symlink(harmless, link);
        const spec = testSpec({ mounts: [{ hostPath: link, containerPath: '/mnt/x', readOnly: true }] });
        await rt.create({ namespace: 'default', name: 'rl', spec, source: FILE_SOURCE });
        await rm(link);
        await symlink(path.dirname(root), link);
        await assert.rejects(rt.start('default/rl'), /spec\.mounts\[0\]\.hostPath: .*\(a symlink to .*\) contains acetate's (state|run) dir/);
        assert.equal((await rt.get('default/rl'))?.process.state === 'running', false, 'nothing runs');
        await rt.remove('default/rl', { keepPrivateArea: false });
      } finally {
        await rm(harmless, { recursive: true, force: true });
      }
    });
  });
});
