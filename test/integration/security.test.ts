/**
 * Security defaults, checked the way an auditor would on the host: the metrics endpoint listens on
 * loopback only; acetate's state dir, records and logs are private (0700, nothing world-writable,
 * even under umask 000); names and mount paths cannot escape the state dir or mount over host
 * paths; a container's process has Docker's default capability set and no_new_privs, its own
 * namespaces, and cannot change the host's files through its root filesystem.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CLI, runCli, NODE_IDS_BY_DEFAULT } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { assertNoLeaks } from '../support/leaks.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { makeRuntime } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { FILE_SOURCE, testSpec } from '../support/test-spec.js';
import { shellManifest } from '../support/manifest.js';
import { procStatus } from '../support/proc.js';
import { DEFAULT_METRICS_ADDR, parseListenAddress } from '../../src/observability/http.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from '../../src/runtime/runc/oci-config.js';
import { flatContainers } from '../support/get.js';
import { skipBecause } from '../support/prerequisites.js';

interface Got {
  name: string;
  pid?: number;
  phase: string;
}

/** Bit numbers of capabilities, in the kernel's order (ALL_CAPABILITIES is that order). */
function capMask(caps: readonly string[]): bigint {
  let m = 0n;
  for (const c of caps) {
    const bit = ALL_CAPABILITIES.indexOf(c);
    assert.ok(bit >= 0, c);
    m |= 1n << BigInt(bit);
  }
  return m;
}

const manifest = (name: string, spec: string, command = 'exec sleep 1000000'): string => shellManifest(name, { command, spec });

describe('security defaults (real runc)', function () {
  this.timeout(120_000);
  let root: string;
  let stateDir: string;
  let dir: string;

  const apply = (env?: NodeJS.ProcessEnv) => runCli(['apply', '-f', dir, '--allow-empty'], { stateDir, env });
  const get = async (name: string): Promise<Got> => {
    const r = await runCli(['get', '-o', 'json'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    const c = (flatContainers(r.stdout) as Got[]).find((x) => x.name === name);
    assert.ok(c, `${name} not listed`);
    return c;
  };

  beforeEach(async () => {
    ({ root, stateDir, dir } = await makeCliRoot('acetate-sec-')); // the state dir is not created: acetate creates it
  });
  afterEach(() => destroyAllAndAssertNoLeaks({ root, stateDir, dir, apply }));

  describe('metrics endpoint', () => {
    it('defaults to loopback; an address without a host binds loopback too', () => {
      assert.match(DEFAULT_METRICS_ADDR, /^127\.0\.0\.1:\d+$/);
      assert.equal(parseListenAddress(DEFAULT_METRICS_ADDR)?.host, '127.0.0.1');
      assert.equal(parseListenAddress(':9464')?.host, '127.0.0.1');
      assert.equal(parseListenAddress('9464')?.host, '127.0.0.1');
    });

    it('acetate run --metrics-addr :0 listens on 127.0.0.1 only (not reachable on other addresses)', async () => {
      await writeFile(path.join(dir, 'm.yaml'), manifest('m', ''));
      const run = new CliProcess(['run', '-f', dir, '--metrics-addr', ':0', '--log-format', 'text'], { stateDir });
      try {
        const url = await waitFor(() => /metrics listening on (http:\/\/\S+)/.exec(run.stdout + run.stderr)?.[1], {
          what: 'metrics URL in the log',
          timeoutMs: 30_000,
        });
        const u = new URL(url);
        assert.equal(u.hostname, '127.0.0.1');
        // 200 once the loop started (the listener comes up just before it): waited for, not sampled.
        await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, { what: '/healthz 200', timeoutMs: 30_000 });
        const others = Object.values(os.networkInterfaces())
          .flat()
          .filter((i) => i && i.family === 'IPv4' && !i.internal)
          .map((i) => i!.address);
        for (const addr of others) {
          const refused = await new Promise<boolean>((resolve) => {
            const s = net.connect({ host: addr, port: Number(u.port) });
            s.once('connect', () => {
              s.destroy();
              resolve(false);
            });
            s.once('error', () => resolve(true));
          });
          assert.ok(refused, `metrics reachable on ${addr}:${u.port}`);
        }
      } finally {
        await run.stop();
      }
    });
  });

  describe('state dir', () => {
    async function walk(d: string, out: { p: string; mode: number; type: string }[] = []): Promise<typeof out> {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        // What the container itself writes (rootfs, private area) is the container's business.
        // The host view's layer is a lower layer of every host-template container's / (its /tmp is 1777, as the node's); its tmpfs is 0700 (checked).
        if (/\/containers\/[^/]+\/(rootfs|upper|work)$/.test(p) || /\/templates\/[^/]+\/rootfs$/.test(p) || /\/host-layers-[0-9a-f]+\/layer-[^/]+$/.test(p))
          continue;
        const st = await lstat(p);
        out.push({ p, mode: st.mode & 0o7777, type: e.isSymbolicLink() ? 'link' : e.isDirectory() ? 'dir' : 'file' });
        if (e.isDirectory()) await walk(p, out);
      }
      return out;
    }

    for (const umask of ['022', '000']) {
      it(`is 0700 and nothing in it is world-writable (acetate run with umask ${umask})`, async () => {
        await writeFile(
          path.join(dir, 's.yaml'),
          manifest('s', '  env: [{ name: API_TOKEN, value: not-for-other-users }]\n', 'echo a log line; exec sleep 1000000'),
        );
        const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
          const child = spawn('/bin/sh', ['-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, CLI, '--state-dir', stateDir, 'apply', '-f', dir], {
            stdio: ['ignore', 'ignore', 'pipe'],
            env: { ...NODE_IDS_BY_DEFAULT, ...process.env },
          });
          let err = '';
          child.stderr.on('data', (d) => (err += d));
          child.on('close', (code) => resolve({ code, err }));
        });
        assert.equal(r.code, 0, r.err);
        await waitFor(async () => (await runCli(['logs', 's'], { stateDir })).stdout.includes('a log line'), { what: 'log line' });
        const st = await lstat(stateDir);
        assert.equal(st.mode & 0o777, 0o700, `state dir mode ${(st.mode & 0o777).toString(8)}`);
        const entries = await walk(stateDir);
        assert.ok(entries.some((e) => e.p.endsWith('record.json')) && entries.some((e) => e.p.endsWith('container.log')), 'walked the records and logs');
        const worldWritable = entries.filter((e) => e.type !== 'link' && (e.mode & 0o002) !== 0).map((e) => `${e.p} ${e.mode.toString(8)}`);
        assert.deepEqual(worldWritable, [], 'world-writable files in the state dir');
        const secretsReadable = entries
          .filter((e) => /record\.json|config\.json|container\.log$/.test(e.p) && (e.mode & 0o044) !== 0)
          .map((e) => `${e.p} ${e.mode.toString(8)}`);
        assert.deepEqual(secretsReadable, [], 'records, OCI configs (env values) and logs readable by others');
      });
    }
  });

  describe('names and mounts cannot escape', () => {
    it('the runtime refuses names and namespaces that are not DNS labels, creating nothing outside the state dir', async () => {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const before = (await readdir(root)).sort();
      const rt = makeRuntime(stateDir);
      for (const [namespace, name] of [
        ['default', '../../escape'],
        ['..', 'escape'],
        ['default', 'a/b'],
        ['default/..', 'x'],
        ['default', '.'],
        ['default', 'x_y'],
        ['default', ''],
      ] as const) {
        await assert.rejects(
          rt.create({ namespace, name, spec: testSpec(), source: FILE_SOURCE }),
          /invalid (name|namespace)/,
          `${namespace}/${name} accepted`,
        );
      }
      assert.deepEqual((await readdir(root)).sort(), before, 'nothing created next to the state dir');
      assert.deepEqual(await readdir(path.join(stateDir, 'containers')).catch(() => []), [], 'no container dir created');
    });

    it('a symlink planted in the private area cannot redirect a bind mount onto a host path', async () => {
      const hostTarget = await mkdtemp('/tmp/acetate-sec-target-');
      const source = await mkdtemp('/tmp/acetate-sec-source-');
      try {
        await writeFile(path.join(hostTarget, 'host-file'), 'host\n');
        await writeFile(path.join(source, 'from-source'), 'source\n');
        // 1. The container plants /escape -> <hostTarget> in its private area.
        await writeFile(path.join(dir, 'e.yaml'), manifest('e', '', `ln -sfn ${hostTarget} /escape; echo planted; exec sleep 1000000`));
        assert.equal((await apply()).code, 0);
        await waitFor(async () => (await runCli(['logs', 'e'], { stateDir })).stdout.includes('planted'), { what: 'symlink planted' });
        assert.equal(await readlink(path.join(stateDir, 'containers', 'default_e', 'upper', 'escape')), hostTarget);
        // 2. A new spec bind-mounts a host dir on /escape (replace; the private area is kept).
        await writeFile(
          path.join(dir, 'e.yaml'),
          manifest('e', `  mounts: [{ hostPath: ${source}, containerPath: /escape, readOnly: true }]\n`, 'ls /escape/; exec sleep 1000001'),
        );
        const r = await apply();
        // Either refused, or mounted inside the container's rootfs: never on the host's path.
        const mounts = await readFile('/proc/self/mountinfo', 'utf8');
        assert.ok(!mounts.split('\n').some((l) => l.split(' ')[4] === hostTarget), `a mount landed on the host path ${hostTarget}`);
        assert.deepEqual((await readdir(hostTarget)).sort(), ['host-file'], 'the host dir is unchanged');
        if (r.code === 0)
          await waitFor(async () => (await runCli(['logs', 'e'], { stateDir })).stdout.includes('from-source'), {
            what: 'the container sees the mount at /escape',
          });
      } finally {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await apply();
        await rm(hostTarget, { recursive: true, force: true });
        await rm(source, { recursive: true, force: true });
      }
    });

    it("refuses to bind-mount acetate's own state dir (or anything in it) into a container", async () => {
      // With it a container could rewrite other containers' records and OCI configs (e.g. make
      // one privileged at its next start).
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      for (const [i, hostPath] of [stateDir, path.join(stateDir, 'containers')].entries()) {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await writeFile(
          path.join(dir, 'sd.yaml'),
          manifest(`sd${i}`, `  mounts: [{ hostPath: ${hostPath}, containerPath: /mnt }]\n`, 'ls /mnt; exec sleep 1000000'),
        );
        const r = await apply();
        assert.equal(r.code, 1, `a container mounting ${hostPath} was created:\n${r.stdout}`);
        assert.match(r.stderr, /state dir/, 'the error says why');
        const listed = await runCli(['get', '-o', 'json'], { stateDir });
        const running = (flatContainers(listed.stdout) as Got[]).filter((c) => c.phase === 'Running');
        assert.deepEqual(running, [], 'nothing runs with the state dir mounted');
      }
    });

    it("refuses to bind-mount acetate's run dir (runc root, bundles, pid files) into a container", async () => {
      // The run dir outside the state dir, as /run/acetate is for /var/lib/acetate.
      const runDir = path.join(root, 'run');
      const env = { ACETATE_RUN_DIR: runDir };
      for (const [i, hostPath] of [runDir, path.join(runDir, 'runc')].entries()) {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await writeFile(
          path.join(dir, 'rd.yaml'),
          manifest(`rd${i}`, `  mounts: [{ hostPath: ${hostPath}, containerPath: /mnt }]\n`, 'ls /mnt; exec sleep 1000000'),
        );
        const r = await apply(env);
        assert.equal(r.code, 1, `a container mounting ${hostPath} was created:\n${r.stdout}`);
        assert.match(r.stderr, /run dir/, 'the error says why');
        const listed = await runCli(['get', '-o', 'json'], { stateDir, env });
        assert.deepEqual(
          (flatContainers(listed.stdout) as Got[]).filter((c) => c.phase === 'Running'),
          [],
          'nothing runs with the run dir mounted',
        );
      }
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir);
      assert.equal((await apply(env)).code, 0);
      await assertNoLeaks(stateDir, { runDir });
    });

    it("a container's writes and deletes under / stay in its private area (the host's / is a read-only lower layer)", async () => {
      // Not under /tmp: the host template gives containers a /tmp of their own (host-isolation.ts).
      const victim = `/var/lib/acetate-sec-victim-${process.pid}`;
      const planted = `/etc/acetate-sec-planted-${process.pid}`;
      await writeFile(victim, 'keep me\n');
      try {
        await writeFile(path.join(dir, 'w.yaml'), manifest('w', '', `rm -f ${victim}; echo x > ${planted}; echo done; exec sleep 1000000`));
        assert.equal((await apply()).code, 0);
        await waitFor(async () => (await runCli(['logs', 'w'], { stateDir })).stdout.includes('done'), { what: 'container wrote' });
        assert.equal(await readFile(victim, 'utf8'), 'keep me\n', 'the host file deleted inside the container still exists');
        await assert.rejects(lstat(planted), 'the file written inside the container is not on the host');
        assert.equal(await readFile(path.join(stateDir, 'containers', 'default_w', 'upper', planted), 'utf8'), 'x\n', 'it is in the private area');
      } finally {
        await rm(victim, { force: true });
      }
    });
  });

  describe('container process', () => {
    const cases: { name: string; spec: string; caps: readonly string[]; nnp: '0' | '1' }[] = [
      { name: 'default', spec: '', caps: DEFAULT_CAPABILITIES, nnp: '1' },
      {
        name: 'adjusted',
        spec: '  securityContext: { capabilities: { add: [NET_ADMIN], drop: [NET_RAW, MKNOD] } }\n',
        caps: [...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_NET_RAW' && c !== 'CAP_MKNOD'), 'CAP_NET_ADMIN'],
        nnp: '1',
      },
      { name: 'nnp-off', spec: '  securityContext: { noNewPrivileges: false }\n', caps: DEFAULT_CAPABILITIES, nnp: '0' },
      { name: 'net-raw', spec: '  securityContext: { capabilities: { add: [NET_RAW] } }\n', caps: [...DEFAULT_CAPABILITIES, 'CAP_NET_RAW'], nnp: '1' },
      // privileged (and network: host below) need hostUsers: true said, now that a user namespace is the default.
      { name: 'privileged', spec: '  securityContext: { privileged: true, hostUsers: true }\n', caps: ALL_CAPABILITIES, nnp: '0' },
    ];

    it("has Docker's default capability set without NET_RAW and no_new_privs unless asked otherwise (CapEff, CapBnd, NoNewPrivs)", async () => {
      for (const c of cases) await writeFile(path.join(dir, `${c.name}.yaml`), manifest(c.name, c.spec));
      const r = await apply();
      assert.equal(r.code, 0, r.stderr);
      // acetate can only hand out what it has itself: its own bounding set caps a privileged container.
      const bounding = BigInt(`0x${(await procStatus(process.pid)).CapBnd}`);
      for (const c of cases) {
        const got = await get(c.name);
        assert.ok(got.pid, `${c.name} runs`);
        const st = await procStatus(got.pid);
        const want = capMask(c.caps) & bounding;
        assert.equal(BigInt(`0x${st.CapEff}`), want, `${c.name}: CapEff ${st.CapEff}, want ${want.toString(16)}`);
        assert.equal(BigInt(`0x${st.CapBnd}`), want, `${c.name}: CapBnd ${st.CapBnd}`);
        assert.equal(BigInt(`0x${st.CapInh}`), 0n, `${c.name}: CapInh`);
        assert.equal(st.NoNewPrivs, c.nnp, `${c.name}: NoNewPrivs`);
      }
      // Docker's set is 0xa80425fb; NET_RAW (bit 13) is out, as in Podman's.
      assert.equal(capMask(DEFAULT_CAPABILITIES), 0xa80425fbn & ~(1n << 13n), "the default is Docker's set without NET_RAW");
      const netRaw = 1n << 13n;
      assert.equal(BigInt(`0x${(await procStatus((await get('default')).pid!)).CapEff}`) & netRaw, 0n, 'no NET_RAW by default');
      assert.equal(BigInt(`0x${(await procStatus((await get('net-raw')).pid!)).CapEff}`) & netRaw, netRaw, 'NET_RAW with capabilities.add: [NET_RAW]');
    });

    it('runs in its own pid, mount, uts, ipc, cgroup and network namespaces (network: host shares only the network); /proc/self/cgroup names no node path', async () => {
      await writeFile(path.join(dir, 'iso.yaml'), manifest('iso', ''));
      await writeFile(path.join(dir, 'hostnet.yaml'), manifest('hostnet', '  network: host\n  securityContext: { hostUsers: true }\n'));
      assert.equal((await apply()).code, 0);
      for (const [name, shared] of [
        ['iso', []],
        ['hostnet', ['net']],
      ] as const) {
        const pid = (await get(name)).pid!;
        for (const ns of ['pid', 'mnt', 'uts', 'ipc', 'cgroup', 'net']) {
          const mine = await readlink(`/proc/self/ns/${ns}`);
          const theirs = await readlink(`/proc/${pid}/ns/${ns}`);
          if ((shared as readonly string[]).includes(ns)) assert.equal(theirs, mine, `${name}: ${ns} shared`);
          else assert.notEqual(theirs, mine, `${name}: own ${ns} namespace`);
        }
        // From inside, every hierarchy's path is the namespace's root: not the node's
        // /acetate-<instance>/<namespace>_<name> (the node still sees that path).
        const inside = await runCli(['exec', name, '--', 'cat', '/proc/self/cgroup'], { stateDir });
        assert.equal(inside.code, 0, inside.stderr);
        const paths = inside.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(':').slice(2).join(':'));
        assert.ok(paths.length > 0 && paths.every((p) => p === '/'), `${name}: /proc/self/cgroup inside: ${inside.stdout}`);
        assert.match(await readFile(`/proc/${pid}/cgroup`, 'utf8'), /acetate-/, `${name}: the node sees its real cgroup`);
      }
    });

    it("masks /sys/firmware and /proc/acpi (empty, not writable), the first with no file system of its own (unless SYS_ADMIN with the node's ids); privileged masks nothing", async function () {
      const nodeFirmware = await readdir('/sys/firmware').catch(() => []);
      if (!nodeFirmware.length) skipBecause(this, 'this node has no /sys/firmware: nothing to mask there');
      await chmod(root, 0o711); // the user-namespaced container's range root crosses the test's dir
      await writeFile(path.join(dir, 'masked.yaml'), manifest('masked', ''));
      await writeFile(path.join(dir, 'priv.yaml'), manifest('priv', '  securityContext: { privileged: true, hostUsers: true }\n'));
      const first = await apply();
      assert.equal(first.code, 0, first.stderr);
      const inside = (name: string, script: string) => runCli(['exec', name, '--', '/bin/sh', '-c', script], { stateDir });
      const ls = await inside(
        'masked',
        'ls -A /sys/firmware /proc/acpi; touch /sys/firmware/x && echo WROTE; mkdir /sys/firmware/d && echo WROTE; touch /proc/acpi/x && echo WROTE; true',
      );
      assert.equal(ls.code, 0, ls.stderr);
      assert.deepEqual(ls.stdout.trim().split('\n'), ['/proc/acpi:', '', '/sys/firmware:'], `listed inside: ${ls.stdout}`);
      assert.doesNotMatch(ls.stdout, /WROTE/);
      // /sys/firmware is a bind of one shared empty dir (no tmpfs: no superblock per container); /proc/acpi is runc's tmpfs.
      const mounts = (await readFile(`/proc/${(await get('masked')).pid!}/mountinfo`, 'utf8')).split('\n').map((l) => l.split(' '));
      const at = (p: string) => mounts.filter((f) => f[4] === p).map((f) => ({ fs: f[f.indexOf('-') + 1], options: f[5]! }));
      assert.deepEqual(
        at('/sys/firmware').map((m) => m.fs),
        [await fsTypeOf(stateDir)],
        JSON.stringify(at('/sys/firmware')),
      );
      assert.match(at('/sys/firmware')[0]!.options, /^ro,/);
      assert.deepEqual(
        at('/proc/acpi').map((m) => m.fs),
        ['tmpfs'],
      );
      // With SYS_ADMIN a container may remount its masks writable: the node's root (hostUsers) then
      // gets a tmpfs of its own, not the shared dir; a user namespace's root cannot write to that dir.
      await writeFile(path.join(dir, 'admin.yaml'), manifest('admin', '  securityContext: { hostUsers: true, capabilities: { add: [SYS_ADMIN] } }\n'));
      await writeFile(path.join(dir, 'nsadmin.yaml'), manifest('nsadmin', '  securityContext: { hostUsers: false, capabilities: { add: [SYS_ADMIN] } }\n'));
      const second = await apply();
      assert.equal(second.code, 0, second.stderr);
      const fsAt = async (name: string) =>
        (await readFile(`/proc/${(await get(name)).pid!}/mountinfo`, 'utf8'))
          .split('\n')
          .map((l) => l.split(' '))
          .filter((f) => f[4] === '/sys/firmware')
          .map((f) => f[f.indexOf('-') + 1]);
      assert.deepEqual(await fsAt('admin'), ['tmpfs']);
      assert.deepEqual(await fsAt('nsadmin'), [await fsTypeOf(stateDir)]);
      const tries = await inside('nsadmin', 'mount -o remount,bind,rw /sys/firmware && echo REMOUNTED; touch /sys/firmware/x && echo WROTE; true');
      assert.doesNotMatch(tries.stdout, /WROTE/, tries.stdout + tries.stderr);
      console.log(`      (nsadmin: ${tries.stdout.includes('REMOUNTED') ? 'remounted writable, then' : 'could not remount, and'} could not write)`);
      assert.deepEqual(await readdir(path.join(stateDir, 'empty')), []);
      const priv = await inside('priv', 'ls -A /sys/firmware');
      assert.deepEqual(priv.stdout.trim().split('\n').sort(), [...nodeFirmware].sort(), "privileged: the node's /sys/firmware");
    });
  });
});

/** The file system type of the mount `p` is on (the node's view): the last mount whose point is above it. */
async function fsTypeOf(p: string): Promise<string> {
  const real = await realpath(p);
  let best = { point: '', fs: '' };
  for (const f of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' '))) {
    const point = f[4] ?? '';
    if ((real === point || real.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length >= best.point.length)
      best = { point, fs: f[f.indexOf('-') + 1]! };
  }
  return best.fs;
}
