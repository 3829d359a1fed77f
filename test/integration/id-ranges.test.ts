/**
 * Issue 23: unprivileged by default, each container with its own range of node ids. Checked with
 * real runc on an imported template (which runs in a user namespace today; the host template and
 * images need idmapped layers): two containers get disjoint ranges, seen in /proc/self/uid_map and
 * in who owns their files on the node; a destroy frees a range for the next container; a change of
 * the node's default is a replace `plan` names, and the private area's files stay usable across it;
 * what cannot work in a user namespace is refused with the reason, and measured here.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { readIdRecords } from '../../src/runtime/walls/id-records.js';
import { waitFor } from '../support/wait.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { shellManifest } from '../support/manifest.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { ownPool, POOL_SLOTS } from '../support/own-pool.js';

/** This file's own pool: containers of test files running beside it hold the default pool's first ranges. */
const OWN = ownPool(POOL_SLOTS.idRanges);
const POOL = OWN.pool;
const range = (i: number) => ({ hostID: POOL.hostID + i * RANGE_SIZE, size: RANGE_SIZE });
const ids = (i: number) => `${range(i).hostID}-${range(i).hostID + RANGE_SIZE - 1}`;
/** As plan prints a range: an en dash. */
const planIds = (i: number) => `${range(i).hostID}–${range(i).hostID + RANGE_SIZE - 1}`;
const manifest = (name: string, command: string, spec = ''): string => shellManifest(name, { command, spec, template: 'bb' });

describe('per-container id ranges, unprivileged by default (real runc)', function () {
  this.timeout(180_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  // ACETATE_HOST_USERS empty: the project's default (a user namespace), not the harness's node ids.
  let hostUsers = '';
  const cli = (args: string[]) => runCli(args, { stateDir, env: { ACETATE_RUN_DIR: runDir, ACETATE_HOST_USERS: hostUsers, ...OWN.env } });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const logs = async (name: string) => (await cli(['logs', name])).stdout;
  const waitLog = (name: string, text: string) => waitFor(async () => (await logs(name)).includes(text), { what: `${name} logs '${text}'`, timeoutMs: 30_000 });
  const uidMap = async (name: string) => {
    const line = (await logs(name)).split('\n').find((l) => /^\s*0\s+\d+\s+\d+\s*$/.test(l));
    assert.ok(line, `${name} printed its uid_map`);
    return line.trim().split(/\s+/).map(Number);
  };
  const upper = (name: string, ...p: string[]) => path.join(stateDir, 'containers', `default_${name}`, 'upper', ...p);

  beforeEach(async () => {
    hostUsers = '';
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-ids-', { userns: true }));
    const bb = await makeBusyboxRootfs(path.join(root, 'bb'));
    assert.equal((await cli(['template', 'import', 'bb', bb])).code, 0);
  });
  afterEach(() => destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply }));

  it('two containers get disjoint ranges by default (uid_map, file owners, get -o wide, describe); a destroy frees one for the next', async () => {
    const script = 'cat /proc/self/uid_map; mkdir -p /data; echo x > /data/f; echo ready; exec sleep 1000000';
    await writeFile(path.join(dir, 'a.yaml'), manifest('a', script));
    await writeFile(path.join(dir, 'b.yaml'), manifest('b', script));
    const plan = await cli(['plan', '-f', dir]);
    assert.match(plan.stdout, new RegExp(`create\\s+default/a .*user namespace: root is node ids ${planIds(0)}`), plan.stdout);
    assert.match(plan.stdout, new RegExp(`create\\s+default/b .*user namespace: root is node ids ${planIds(1)}`), plan.stdout);
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitLog('a', 'ready');
    await waitLog('b', 'ready');
    assert.deepEqual(await uidMap('a'), [0, range(0).hostID, RANGE_SIZE]);
    assert.deepEqual(await uidMap('b'), [0, range(1).hostID, RANGE_SIZE]);
    assert.equal((await stat(upper('a', 'data', 'f'))).uid, range(0).hostID, "a's file is owned by a's range on the node");
    assert.equal((await stat(upper('b', 'data', 'f'))).uid, range(1).hostID, "b's file is owned by b's range on the node");
    const wide = await cli(['get', '-o', 'wide']);
    assert.match(wide.stdout, /IDS/);
    assert.match(wide.stdout, new RegExp(`\\ba\\b.*${ids(0)}`), wide.stdout);
    assert.match(wide.stdout, new RegExp(`\\bb\\b.*${ids(1)}`), wide.stdout);
    assert.match((await cli(['describe', 'b'])).stdout, new RegExp(`User ids:\\s+${ids(1)} \\(its own user namespace range\\)`));
    // Destroy a: its range is free; the next container gets it, and b keeps its own.
    await writeFile(path.join(dir, 'a.yaml'), '');
    assert.equal((await apply()).code, 0);
    // The node's records (with their journal) no longer name a at once; b is still there.
    const recorded = (await readIdRecords(path.join(stateDir, 'node-id-ranges.json'))).map(
      (r) => `${r.owner.container} ${r.ranges.map((x) => x.hostID).join(',')}`,
    );
    assert.deepEqual(recorded, [`default_b ${range(1).hostID}`]);
    await writeFile(path.join(dir, 'c.yaml'), manifest('c', script));
    assert.equal((await apply()).code, 0);
    await waitLog('c', 'ready');
    assert.deepEqual(await uidMap('c'), [0, range(0).hostID, RANGE_SIZE]);
    assert.deepEqual(await uidMap('b'), [0, range(1).hostID, RANGE_SIZE]);
  });

  it('a change of the default is a replace plan names, both ways; the private area stays usable', async () => {
    hostUsers = 'true'; // created when the node's default was the node's ids
    await writeFile(
      path.join(dir, 'w.yaml'),
      manifest('w', 'cat /proc/self/uid_map; mkdir -p /data; echo run >> /data/runs; wc -l < /data/runs | sed s/^/runs=/; exec sleep 1000000'),
    );
    assert.equal((await apply()).code, 0);
    await waitLog('w', 'runs=1');
    assert.equal((await stat(upper('w', 'data', 'runs'))).uid, 0);
    assert.match((await cli(['get', '-o', 'wide'])).stdout, /\bw\b.*\bnode\b/);
    assert.match((await cli(['plan', '-f', dir])).stdout, /No changes/);
    hostUsers = ''; // the default becomes a user namespace: not applied silently, a named replace
    const plan = await cli(['plan', '-f', dir]);
    assert.match(
      plan.stdout,
      new RegExp(`-/\\+ replace\\s+default/w\\s+user namespace: node root → ids ${planIds(0)}, the private area's files are re-owned`),
      plan.stdout,
    );
    assert.equal((await apply()).code, 0);
    await waitFor(async () => /runs=2/.test(await logs('w')), { what: 'second run', timeoutMs: 30_000 });
    assert.deepEqual(await uidMap('w'), [0, range(0).hostID, RANGE_SIZE]);
    assert.equal((await stat(upper('w', 'data', 'runs'))).uid, range(0).hostID, 're-owned to the range');
    assert.match((await cli(['plan', '-f', dir])).stdout, /No changes/);
    hostUsers = 'true'; // and back
    const back = await cli(['plan', '-f', dir]);
    assert.match(back.stdout, new RegExp(`replace\\s+default/w\\s+user namespace: ids ${planIds(0)} → node root`), back.stdout);
    assert.equal((await apply()).code, 0);
    await waitFor(async () => /runs=3/.test(await logs('w')), { what: 'third run', timeoutMs: 30_000 });
    assert.equal((await stat(upper('w', 'data', 'runs'))).uid, 0, 'owned by the node root again');
    assert.equal(await readFile(upper('w', 'data', 'runs'), 'utf8'), 'run\nrun\nrun\n');
  });

  it('refuses what cannot work unprivileged, with the reason; measures a hostPath of node-owned files', async () => {
    await writeFile(path.join(dir, 'hn.yaml'), manifest('hn', 'exec sleep 1000000', '  network: host\n'));
    const r = await apply();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /spec\.network: host needs securityContext\.hostUsers: true \(containers get a user namespace by default\)/);
    await writeFile(path.join(dir, 'hn.yaml'), manifest('hn', 'exec sleep 1000000', '  securityContext: { privileged: true }\n'));
    const p = await apply();
    assert.equal(p.code, 1);
    assert.match(p.stderr, /spec\.securityContext\.privileged: true needs hostUsers: true/);
    // The host template runs in a user namespace (its layers are mounted idmapped: idmap.test.ts).
    await writeFile(path.join(dir, 'hn.yaml'), shellManifest('hn', { command: 'exec sleep 1000000' }));
    assert.equal((await apply()).code, 0);
    // A hostPath of node-owned files (root, 0755/0644): readable, not writable, even by the container's root.
    const shared = path.join(root, 'shared');
    await mkdir(shared, { mode: 0o755 });
    await writeFile(path.join(shared, 'conf'), 'node-config\n', { mode: 0o644 });
    await writeFile(
      path.join(dir, 'hn.yaml'),
      manifest(
        'hn',
        'cat /mnt/conf; ls -ln /mnt/conf | awk "{print \\"owner=\\" \\$3}"; if echo w > /mnt/new 2>/dev/null; then echo WROTE; else echo write-refused; fi; exec sleep 1000000',
        `  mounts:\n  - { hostPath: ${shared}, containerPath: /mnt }\n`,
      ),
    );
    assert.equal((await apply()).code, 0);
    await waitLog('hn', 'write');
    const out = await logs('hn');
    assert.match(out, /node-config/, 'readable');
    assert.match(out, /owner=65534/, "the node's root shows as nobody (the overflow id)");
    assert.match(out, /write-refused/, out);
  });
});
