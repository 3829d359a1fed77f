/**
 * The features together, as a user combines them (each was tested alone): bridge networking with a
 * published port, the default init, the host template's masks and a readiness probe; a disk limit
 * in a user namespace; a user namespace on the bridge; an image with a disk on the bridge, and its
 * `get -o json` against the CRD schema; read-only commands that leave the state and run dirs as they
 * were. Real runc, real CNI plugins, real loop devices, a real registry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assertValidContainerObject } from '../support/crd-object.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { ownPool, POOL_SLOTS } from '../support/own-pool.js';

/** This file's own pool: containers of test files running beside it hold the default pool's first ranges. */
const OWN = ownPool(POOL_SLOTS.combinations);
/** The range the first unprivileged container of a state dir gets: the pool's first. */
const FIRST_RANGE = OWN.first;
import { exec } from '../../src/util/exec.js';
import { LOCK_FILE, readLockHolder } from '../../src/runtime/node-lock.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { runCli } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { inContainer, MI } from '../support/disk.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { networkEnv, testNetwork, type TestNetwork } from '../support/network-leaks.js';
import { freePort, httpdScript, httpGet } from '../support/network-test.js';
import { buildImage, pushLayout, TEST_IMAGE_CONFIG, testImageLayers } from '../support/oci-image.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { waitFor } from '../support/wait.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

function manifest(name: string, spec: string): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
${spec}`;
}

/** The container's PID 1 command line and those of its children, read inside its mount namespace. */
async function processTree(pid: number): Promise<{ pid1: string; children: string }> {
  const r = await inContainer(pid, 'cat /proc/1/cmdline; echo; for c in $(cat /proc/1/task/1/children); do cat /proc/$c/cmdline; echo; done');
  const [pid1 = '', ...children] = r.out.replace(/\0/g, ' ').split('\n');
  return { pid1, children: children.join('\n') };
}

const ready = (rec: StatusRecord) => rec.status.conditions?.find((c) => c.type === 'Ready');

describe('feature combinations (real runc, CNI, loop devices, registry)', function () {
  this.timeout(240_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  let n: TestNetwork;
  let env: NodeJS.ProcessEnv;
  let run: CliProcess | undefined;
  const cli = (args: string[]) => runCli(args, { stateDir, env });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const describeJson = async (name: string): Promise<StatusRecord> => {
    const r = await cli(['describe', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusRecord;
  };
  const pidOf = async (name: string): Promise<number> => waitFor(`${name} running`, async () => (await describeJson(name)).actual?.pid, { timeoutMs: 30_000 });
  /** A second pass finds nothing to do: the combination does not make the plan replace it forever. */
  const assertConverged = async () => {
    const p = await cli(['plan', '-f', dir]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /No changes/, p.stdout);
  };
  const importBusybox = async () => {
    const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
    const r = await cli(['template', 'import', 'bb', bb]);
    assert.equal(r.code, 0, r.stderr);
  };

  beforeEach(async () => {
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-combo-', { userns: true }));
    n = await testNetwork();
    env = { ...networkEnv(n), ACETATE_RUN_DIR: runDir, ...OWN.env };
  });

  afterEach(async () => {
    await run?.stop();
    run = undefined;
    await destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, network: n, apply });
  });

  it('bridge + published port + default init + host masks + readiness httpGet under `acetate run`', async () => {
    const port = await freePort();
    await writeFile(
      path.join(dir, 'web.yaml'),
      manifest(
        'web',
        `  template: host
  command: ["/bin/sh", "-c", ${JSON.stringify(httpdScript('web'))}]
  network: bridge
  ports:
    - { name: http, containerPort: 80, hostPort: ${port}, hostIP: 127.0.0.1 }
  readinessProbe:
    httpGet: { path: /index.html, port: 80 }
    periodSeconds: 1
`,
      ),
    );
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '127.0.0.1:0', '--resync', '1s', '--process-poll', '500ms', '--debounce', '100ms'], {
      stateDir,
      env: { ...env, ACETATE_BACKOFF_BASE_MS: '200' },
    });
    assert.equal(await waitFor('port answers', () => httpGet('127.0.0.1', port), { timeoutMs: 30_000 }), 'hello-web\n');
    const rec = await waitFor(
      'Ready True',
      async () => {
        const r = await describeJson('web');
        return ready(r)?.status === 'True' ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const pid = rec.actual!.pid!;
    const ip = rec.status.ip!;
    assert.ok(ip, 'an address');
    // acetate's /etc files, not the node's, and not hidden by the masks.
    const hosts = await inContainer(pid, 'cat /etc/hosts');
    assert.equal(hosts.code, 0, hosts.out);
    assert.match(hosts.out, new RegExp(`${ip.replace(/\./g, '\\.')}\\s+web`), hosts.out);
    const resolv = await inContainer(pid, 'cat /etc/resolv.conf');
    assert.equal(resolv.code, 0, resolv.out);
    assert.doesNotMatch(resolv.out, /nameserver 127\./, 'no loopback resolver in another netns');
    assert.match(resolv.out, /nameserver /, resolv.out);
    assert.equal((await inContainer(pid, 'cat /etc/hostname')).out.trim(), 'web');
    const mounts = await inContainer(pid, 'grep -E " /etc/(hosts|resolv.conf|hostname) " /proc/1/mountinfo');
    assert.equal(mounts.out.trim().split('\n').length, 3, `the three files are bound: ${mounts.out}`);
    // PID 1 is the init; the server is its child.
    const tree = await processTree(pid);
    assert.match(tree.pid1, /^\/dev\/\.acetate-init /, tree.pid1);
    assert.match(tree.children, /busybox httpd/, tree.children);
    // The masks still hide the node's secrets.
    assert.doesNotMatch((await inContainer(pid, 'cat /etc/shadow')).out, /^[^:]+:\$/m, '/etc/shadow holds no password hash (a locked copy)');
  });

  it('resources.disk 64Mi + hostUsers: false on an imported template: files owned by the range, ENOSPC past 64 MiB', async () => {
    await importBusybox();
    await writeFile(
      path.join(dir, 'd.yaml'),
      manifest(
        'd',
        `  template: bb
  command: ["/bin/sh", "-c", "mkdir -p /data && echo hi > /data/f && exec sleep 1000000"]
  securityContext: { hostUsers: false }
  resources:
    disk: 64Mi
`,
      ),
    );
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const pid = await pidOf('d');
    const upper = path.join(stateDir, 'containers', 'default_d', 'disk', 'upper'); // on the disk image
    await waitFor('file written', async () => (await inContainer(pid, 'cat /data/f')).out.includes('hi'), { timeoutMs: 20_000 });
    // The upper dir lives on the disk image: find the file there through the container's root.
    const inside = await cli(['exec', 'd', '--', 'stat', '-c', '%u', '/data/f']);
    assert.equal(inside.stdout.trim(), '0', `root inside: ${inside.stderr}`);
    const onNode = await stat(path.join(upper, 'data', 'f')).catch(() => undefined);
    assert.ok(onNode, `the file is in the private area (${upper})`);
    assert.equal(onNode.uid, FIRST_RANGE.hostID, 'owned by the mapped range on the node');
    // Written by the container's own root (through acetate exec), as the container would.
    const fill = await cli(['exec', 'd', '--', '/bin/sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=100 2>&1; echo rc=$?']);
    assert.match(fill.stdout + fill.stderr, /No space left on device/, fill.stdout + fill.stderr);
    const size = Number((await inContainer(pid, 'stat -c %s /data/big')).out.trim());
    assert.ok(size < 64 * MI, `stopped before 64 MiB: ${size}`);
    await assertConverged();
  });

  it('hostUsers: false + network: bridge: starts and its server on :80 answers on its address and on the published port', async () => {
    const port = await freePort();
    await importBusybox();
    await writeFile(
      path.join(dir, 'u.yaml'),
      manifest(
        'u',
        `  template: bb
  command: ["/bin/sh", "-c", ${JSON.stringify(httpdScript('u'))}]
  network: bridge
  ports:
    - { name: http, containerPort: 80, hostPort: ${port}, hostIP: 127.0.0.1 }
  securityContext: { hostUsers: false }
`,
      ),
    );
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ip = await waitFor('an address', async () => (await describeJson('u')).actual?.network?.ip, { timeoutMs: 30_000 });
    assert.equal(await waitFor('answers', () => httpGet(ip, 80), { timeoutMs: 20_000 }), 'hello-u\n');
    assert.equal(await httpGet('127.0.0.1', port), 'hello-u\n');
    // Root inside is an unprivileged uid on the node.
    const pid = await pidOf('u');
    const uidLine = (await readFile(`/proc/${pid}/status`, 'utf8')).split('\n').find((l) => l.startsWith('Uid:'))!;
    assert.equal(uidLine.split(/\s+/)[1], String(FIRST_RANGE.hostID), uidLine);
    await assertConverged();
  });

  describe('with a registry', () => {
    let reg: TestRegistry;
    let work: string;
    let image: string;
    before(async () => {
      reg = await startRegistry();
      work = await mkdtemp('/tmp/acetate-combo-img-');
      const img = await buildImage(path.join(work, 'v1'), testImageLayers('v1'), TEST_IMAGE_CONFIG);
      await pushLayout(img.layout, `${reg.host}/test/app:v1`);
      image = `${reg.host}/test/app:v1`;
    });
    after(async () => {
      await reg.stop();
      await rm(work, { recursive: true, force: true });
    });
    beforeEach(() => {
      env = { ...env, ACETATE_REGISTRIES_CONF: reg.registriesConf };
    });

    it('image + disk + bridge + port: entrypoint under the init, exec works; get -o json validates against the CRD', async () => {
      const port = await freePort();
      await writeFile(
        path.join(dir, 'img.yaml'),
        manifest(
          'img',
          `  image: ${image}
  network: bridge
  ports:
    - { name: http, containerPort: 80, hostPort: ${port}, hostIP: 127.0.0.1 }
  resources:
    disk: 64Mi
`,
        ),
      );
      const r = await apply();
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const pid = await pidOf('img');
      await waitFor('entrypoint ran', async () => (await inContainer(pid, 'cat /tmp/out')).out.includes('image-default from /app'), { timeoutMs: 20_000 });
      const tree = await processTree(pid);
      assert.match(tree.pid1, /^\/dev\/\.acetate-init /, tree.pid1);
      assert.match(tree.children, /sleep 1000/, `the entrypoint is the init's child: ${tree.children}`);
      const e = await cli(['exec', 'img', '--', 'cat', '/etc/hostname']);
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.stdout.trim(), 'img');
      await assertConverged();

      // get -o json: a Container object the CRD schema accepts, with its status.
      const g = await cli(['get', 'img', '-o', 'json']);
      assert.equal(g.code, 0, g.stderr);
      const obj = JSON.parse(g.stdout) as ContainerManifest;
      assertValidContainerObject(obj);
      const status = obj.status as Record<string, unknown> | undefined;
      assert.ok(status?.ip, `status.ip: ${g.stdout}`);
      assert.ok(status?.imageID, 'status.imageID');
      assert.ok(status?.disk, 'status.disk');
    });
  });

  it('get/describe/plan of a bridge and a disk container create and delete no file in the state and run dirs', async () => {
    await writeFile(
      path.join(dir, 'net.yaml'),
      manifest(
        'net',
        `  template: host
  command: ["/bin/sh", "-c", "exec sleep 1000000"]
  network: bridge
`,
      ),
    );
    await writeFile(
      path.join(dir, 'disk.yaml'),
      manifest(
        'disk',
        `  template: host
  command: ["/bin/sh", "-c", "exec sleep 1000000"]
  resources:
    disk: 32Mi
`,
      ),
    );
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await pidOf('net');
    await pidOf('disk');
    const files = async () => (await exec('find', [stateDir, runDir, '-xdev'])).stdout.split('\n').sort().join('\n');
    const before = await files();
    for (const args of [
      ['get'],
      ['get', '-o', 'json'],
      ['get', 'net', '-o', 'yaml'],
      ['describe', 'net'],
      ['describe', 'disk', '-o', 'json'],
      ['plan', '-f', dir],
    ]) {
      const c = await cli(args);
      assert.equal(c.code, 0, `${args.join(' ')}: ${c.stderr}`);
      assert.equal(await files(), before, `acetate ${args.join(' ')} changed the state or run dir`);
    }
    // `apply` while `run` holds the node lock: exit 1 naming the holder.
    run = new CliProcess(['run', '-f', dir, '--metrics-addr', '127.0.0.1:0'], { stateDir, env });
    // Only once `run` wrote itself as the holder (an apply polled earlier would take the lock first).
    await waitFor(
      'run holds the lock',
      () =>
        readLockHolder(path.join(stateDir, LOCK_FILE))?.pid === run!.pid ||
        (run!.child.exitCode !== null ? Promise.reject(new Error(`run exited: ${run!.stderr}`)) : false),
      { timeoutMs: 30_000 },
    );
    const refused = await apply();
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, new RegExp(String(run.pid)), refused.stderr);
  });
});
