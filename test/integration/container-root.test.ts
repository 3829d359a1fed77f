/**
 * A container's `/` is 0755 (as Docker, Podman and Kubernetes give) in every template kind, so a
 * server that drops to a non-root uid can start and serve: checked with real containers and the
 * real CLI, from inside the container (`acetate exec ... wget`) as a user would. A root left 0700
 * by an older acetate is opened on the next start; a mode the container chose itself is kept.
 */
import assert from 'node:assert/strict';
import { appendFile, chmod, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { flatContainers } from '../support/get.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { shellManifest } from '../support/manifest.js';
import { cgroupPath, procStatus } from '../support/proc.js';
import { ownPool, POOL_SLOTS } from '../support/own-pool.js';

/** This file's own pool: containers of test files running beside it hold the default pool's first ranges. */
const OWN = ownPool(POOL_SLOTS.containerRoot);
/** The range the first unprivileged container of a state dir gets: the pool's first. */
const FIRST_RANGE = OWN.first;

const WWW = 33; // www-data on Debian: the uid nginx/apache workers drop to
const PORT = 8080; // inside the container's own network namespace (network: none): no clash

/**
 * A server started as root that drops to uid/gid 33 before it execs (setpriv on the host
 * template, su in busybox; as a service's User= or an entrypoint's gosu does), then serves a file
 * root wrote. Exec'ing a program as uid 33 needs search permission on `/`.
 */
function serverScript(drop: 'setpriv' | 'su'): string {
  const httpd = `busybox httpd -f -p 127.0.0.1:${PORT} -h /tmp/www`;
  return [
    'mkdir -p /tmp/www',
    'echo served-to-www-data > /tmp/www/index.html',
    drop === 'setpriv' ? `exec setpriv --reuid=${WWW} --regid=${WWW} --clear-groups ${httpd}` : `exec su -s /bin/sh www-data -c 'exec ${httpd}'`,
  ].join(' && ');
}

describe('container root mode (real runc): servers that drop to a non-root uid work', function () {
  this.timeout(120_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  const cli = (args: string[]) => runCli(args, { stateDir, env: { ACETATE_RUN_DIR: runDir, ...OWN.env } });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const pidOf = async (name: string): Promise<number> => {
    const r = await cli(['get', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const [c] = flatContainers(r.stdout);
    assert.ok(c?.pid, `${name} runs`);
    return c.pid;
  };
  /** The page, fetched from inside the container, once the server listens. */
  const fetchPage = (name: string) =>
    waitFor(
      async () => {
        const r = await cli(['exec', name, '--', 'wget', '-q', '-O', '-', `http://127.0.0.1:${PORT}/index.html`]);
        return r.code === 0 ? r.stdout : undefined;
      },
      { what: `${name} serves its page`, timeoutMs: 30_000 },
    );
  /** The uids (on the node) of the container's processes. */
  const uids = async (name: string): Promise<number[]> => {
    const cg = path.join('/sys/fs/cgroup/pids', await cgroupPath(await pidOf(name), 'pids'), 'cgroup.procs');
    const procs = (await readFile(cg, 'utf8')).split('\n').filter(Boolean);
    const out: number[] = [];
    for (const p of procs) {
      const st = await procStatus(Number(p)).catch(() => undefined);
      if (st) out.push(Number(st.Uid!.split(/\s+/)[0]));
    }
    return out;
  };
  const importBusybox = async (): Promise<void> => {
    const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
    await symlink('busybox', path.join(bb, 'bin', 'su'));
    await appendFile(path.join(bb, 'etc', 'passwd'), `www-data:x:${WWW}:${WWW}:www-data:/tmp:/bin/sh\n`);
    await appendFile(path.join(bb, 'etc', 'group'), `www-data:x:${WWW}:\n`);
    const r = await cli(['template', 'import', 'bb', bb]);
    assert.equal(r.code, 0, r.stderr);
  };
  const serve = async (name: string, template: string, spec = '  network: none\n'): Promise<void> => {
    const command = serverScript(template === 'host' ? 'setpriv' : 'su');
    await writeFile(path.join(dir, `${name}.yaml`), shellManifest(name, { command, template, spec }));
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await fetchPage(name), 'served-to-www-data\n');
  };

  beforeEach(async () => {
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-root-', { userns: true }));
  });
  afterEach(() => destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply }));

  it('host template: the server runs as uid 33 and serves; `setpriv --reuid=33 ls /` lists /', async () => {
    await serve('web', 'host');
    assert.ok((await uids('web')).includes(WWW), 'the server runs as uid 33 on the node');
    const ls = await cli(['exec', 'web', '--', 'setpriv', `--reuid=${WWW}`, `--regid=${WWW}`, '--clear-groups', 'ls', '/']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^etc$/m);
    const mode = await cli(['exec', 'web', '--', 'stat', '-c', '%a %u', '/']);
    assert.equal(mode.stdout.trim(), '755 0');
  });

  it('imported template: the server runs as uid 33 and serves', async () => {
    await importBusybox();
    await serve('bbweb', 'bb');
    assert.ok((await uids('bbweb')).includes(WWW), 'the server runs as uid 33 on the node');
  });

  it('imported template with a user namespace: uid 33 of the container (a range id on the node) serves', async () => {
    await importBusybox();
    await serve('nsweb', 'bb', '  network: none\n  securityContext: { hostUsers: false }\n');
    assert.ok((await uids('nsweb')).includes(FIRST_RANGE.hostID + WWW), 'the server runs as range id 33 on the node');
  });

  it('an existing root left 0700 (by an older acetate) is opened at the next start; a mode the container set is kept', async () => {
    const upper = path.join(stateDir, 'containers', 'default_old', 'upper');
    const write = (state: string) =>
      writeFile(path.join(dir, 'old.yaml'), shellManifest('old', { command: 'exec sleep 1000000', spec: `  state: ${state}\n` }));
    const nonRootLs = () => cli(['exec', 'old', '--', 'setpriv', `--reuid=${WWW}`, `--regid=${WWW}`, '--clear-groups', 'ls', '/']);
    await write('Running');
    assert.equal((await apply()).code, 0);
    await waitFor(async () => (await nonRootLs()).code === 0, { what: 'old runs', timeoutMs: 30_000 });
    // Stopped, its root made 0700 as acetate made it before, started again.
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    await chmod(upper, 0o700);
    await write('Running');
    assert.equal((await apply()).code, 0);
    const ls = await nonRootLs();
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal((await stat(upper)).mode & 0o7777, 0o755);
    // The container narrows its own root: kept across a restart, as Docker keeps it.
    assert.equal((await cli(['exec', 'old', '--', 'chmod', '750', '/'])).code, 0);
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    await write('Running');
    assert.equal((await apply()).code, 0);
    assert.equal((await cli(['exec', 'old', '--', 'stat', '-c', '%a', '/'])).stdout.trim(), '750');
  });
});
