/**
 * What a process that escaped its container as its range's root (a uid of the node) can do to the
 * container's walls, with real containers and the real CLI (tester's findings 2 and 3): it cannot
 * rewrite acetate's records in the container dir (ids.json, record.json), and the markers hiding
 * node data are in the view's layer, out of its reach (what it makes in its upper dir shows no
 * node entry). A range the node's records give another live container is refused at a start
 * (checkRangeHeld).
 */
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { runCli } from '../support/cli.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { shellManifest } from '../support/manifest.js';
import { assignIdRange, idsFileOf, type IdRangeStore } from '../../src/runtime/walls/id-ranges.js';
import { checkRangeHeld, IdRangeHeldError } from '../../src/runtime/walls/id-range-held.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { ownPool, POOL_SLOTS } from '../support/own-pool.js';
import { TransientError } from '../../src/contracts/errors.js';

/** The first unprivileged container of a state dir gets the pool's first range. */
// Its own pool: containers of other tests (or of the node) on the default pool hold its first ranges.
const OWN = ownPool(POOL_SLOTS.rangeBreakout);
const BASE = OWN.first.hostID;

/** Runs `cmd` on the node as the range's root (uid and gid BASE, no groups): an escaped container root. */
const asRange = (cmd: string) =>
  exec('setpriv', ['--reuid', String(BASE), '--regid', String(BASE), '--clear-groups', 'sh', '-c', cmd], { okExitCodes: [0, 1, 2] });

describe('after a breakout as the range root (real runc): records stay root, markers come back', function () {
  this.timeout(120_000);
  let root: string;
  let stateDir: string;
  let runDir: string;
  let dir: string;
  const secret = `/root/acetate-breakout-${process.pid}`;
  const cli = (args: string[]) => runCli(args, { stateDir, env: { ACETATE_RUN_DIR: runDir, ...OWN.env } });
  const apply = () => cli(['apply', '-f', dir, '--allow-empty']);
  const write = (state: string) =>
    writeFile(
      path.join(dir, 'ta.yaml'),
      shellManifest('ta', { command: 'exec sleep 1000000', spec: `  state: ${state}\n  securityContext: { hostUsers: false }\n` }),
    );
  const cdir = () => path.join(stateDir, 'containers', 'default_ta');
  const lsRoot = async () => {
    const r = await cli(['exec', 'ta', '--', 'ls', '-a', '/root']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n');
  };
  const restart = async () => {
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    await write('Running');
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitFor(async () => (await cli(['exec', 'ta', '--', 'true'])).code === 0, { what: 'ta runs again', timeoutMs: 30_000 });
  };

  beforeEach(async () => {
    ({ root, stateDir, runDir, dir } = await makeCliRoot('acetate-breakout-', { userns: true }));
    await writeFile(secret, 'node secret\n', { mode: 0o600 });
    await write('Running');
    const r = await apply();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitFor(async () => (await cli(['exec', 'ta', '--', 'true'])).code === 0, { what: 'ta runs', timeoutMs: 30_000 });
    const ids = JSON.parse(await readFile(idsFileOf(cdir()), 'utf8')) as { range: { hostID: number } };
    assert.equal(ids.range.hostID, BASE, 'the first range of the pool');
    assert.ok(!(await lsRoot()).includes(path.basename(secret)), "the node's /root is hidden");
  });
  afterEach(async () => {
    await rm(secret, { force: true });
    await destroyAllAndAssertNoLeaks({ root, stateDir, runDir, dir, apply });
  });

  it('the container dir is root:<range root> 0710; the range root cannot write ids.json or record.json, nor put a file there', async () => {
    const st = await stat(cdir());
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, BASE, 0o710]);
    for (const f of ['ids.json', 'record.json', 'host-view.json']) {
      const w = await asRange(`echo '{}' > ${cdir()}/${f}`);
      assert.notEqual(w.exitCode, 0, `${f} written by the range root`);
      assert.match(w.stderr, /Permission denied/);
    }
    const mv = await asRange(`echo '{}' > /tmp/ids.new.${process.pid}; mv -f /tmp/ids.new.${process.pid} ${cdir()}/ids.json`);
    await rm(`/tmp/ids.new.${process.pid}`, { force: true });
    assert.notEqual(mv.exitCode, 0, 'ids.json replaced by the range root');
    // Its own upper dir stays its own (overlayfs inside the user namespace writes there).
    assert.equal((await stat(path.join(cdir(), 'upper'))).uid, BASE);
  });

  it('a container dir of the earlier layout (owned by the range, records re-owned) is closed at the next start', async () => {
    await write('Stopped');
    assert.equal((await apply()).code, 0);
    await exec('chown', [`${BASE}:${BASE}`, cdir(), idsFileOf(cdir())]);
    await exec('chmod', ['700', cdir()]);
    await write('Running');
    assert.equal((await apply()).code, 0);
    const st = await stat(cdir());
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, BASE, 0o710]);
    assert.equal((await stat(idsFileOf(cdir()))).uid, 0);
    assert.notEqual((await asRange(`echo '{}' > ${idsFileOf(cdir())}`)).exitCode, 0);
  });

  it("the markers hiding the node's /root are out of the range root's reach (the view's layer, host-layer.ts); what it makes in its upper dir does not show them", async () => {
    const layers = layersDirOf(runDir, stateDir);
    const target = JSON.parse(await readFile(path.join(cdir(), 'host-view-target.json'), 'utf8')) as { layer: string };
    const layer = path.join(layers, target.layer);
    assert.ok((await stat(path.join(layer, 'root'))).isDirectory(), 'the layer holds the opaque /root');
    // The layer: neither listed, nor removed, nor its xattr taken off by the range's root.
    for (const cmd of [`ls ${layers}`, `rm -rf ${layer}/root`, `setfattr -h -x user.overlay.opaque ${layer}/root`]) {
      const r = await asRange(cmd);
      assert.notEqual(r.exitCode, 0, `${cmd} as the range root`);
    }
    // Its upper dir is its own: a /root made there without the opaque mark still shows no node entry.
    const upperRoot = path.join(cdir(), 'upper', 'root');
    const mk = await asRange(`mkdir -p ${upperRoot} && touch ${upperRoot}/own && setfattr -h -x user.overlay.opaque ${upperRoot} 2>/dev/null; true`);
    assert.equal(mk.exitCode, 0, mk.stderr);
    await restart();
    const seen = await lsRoot();
    assert.ok(!seen.includes(path.basename(secret)), "the node's /root stays hidden");
    assert.ok(seen.includes('own'), 'what it made in its upper dir is its own');
  });
});

describe('a start refuses a range held by another live container (node records)', () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = await mkdtemp('/tmp/acetate-range-held-');
  });
  afterEach(() => rm(tmp, { recursive: true, force: true }));

  it("tb's ids.json rewritten to ta's range: tb's start is refused (transient), ta's is not", async () => {
    const { mkdir } = await import('node:fs/promises');
    const containersDir = path.join(tmp, 'state', 'containers');
    const store: IdRangeStore = { containersDir, recordsFile: path.join(tmp, 'records.json'), pool: { hostID: BASE, size: RANGE_SIZE * 4 } };
    const ta = path.join(containersDir, 'default_ta');
    const tb = path.join(containersDir, 'default_tb');
    await mkdir(ta, { recursive: true });
    await mkdir(tb, { recursive: true });
    const ra = (await assignIdRange(store, ta, true))!;
    const rb = (await assignIdRange(store, tb, true))!;
    assert.notEqual(ra.hostID, rb.hostID);
    await checkRangeHeld(store, tb, rb);
    await writeFile(idsFileOf(tb), JSON.stringify({ base: rb.hostID, size: RANGE_SIZE, range: ra }));
    const err = await checkRangeHeld(store, tb, ra).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof IdRangeHeldError && err instanceof TransientError, String(err));
    // The range and the records are named, not the holder (another tenant's, in Kubernetes mode);
    // the holder is of this state dir, so plan's replace is the way out.
    assert.match(
      (err as Error).message,
      /held by another live container of the node \(node records .*records\.json\); not started: plan replaces one of the two/,
    );
    assert.doesNotMatch((err as Error).message, /default_ta/);
    await checkRangeHeld(store, ta, ra); // the owner of the range still starts
  });
});
