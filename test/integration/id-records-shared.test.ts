/**
 * The node's id records are shared by every acetate instance (walls/id-records.ts): two instances
 * with their own state dirs and one records file (as two instances on one node have by default,
 * /var/lib/acetate/node-id-ranges.json) each create containers with real runc, and the ranges
 * their processes run with (/proc/<pid>/uid_map, read on the node) are disjoint; `plan` of one
 * announces a range the other does not hold, and `describe` shows the range the process has.
 * Two instances given two records files are kept apart by the node's claims (walls/id-claims.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { destroyAllAndAssertNoLeaks, makeCliRoot, type CliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { flatContainers } from '../support/get.js';
import { makeBusyboxRootfs } from '../support/busybox-rootfs.js';
import { shellManifest } from '../support/manifest.js';
import { missingForContainers, requirePrerequisites } from '../support/prerequisites.js';
import { NODE_ID_CLAIMS, readClaim } from '../../src/runtime/walls/id-claims.js';

describe('node-wide id records: two instances, one records file (real runc)', function () {
  this.timeout(300_000);
  let shared: string;
  let records: string;
  const roots: CliRoot[] = [];
  // ACETATE_HOST_USERS empty: the project's default (a user namespace, each container its own range).
  const cli = (r: CliRoot, args: string[]) =>
    runCli(args, { stateDir: r.stateDir, env: { ACETATE_RUN_DIR: r.runDir, ACETATE_HOST_USERS: '', ACETATE_ID_RECORDS: records } });
  const apply = (r: CliRoot) => cli(r, ['apply', '-f', r.dir, '--allow-empty']);
  const manifest = (name: string) => shellManifest(name, { command: 'echo ready; exec sleep 1000000', template: 'bb' });

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'node-wide id records (real runc containers)');
    shared = await mkdtemp('/tmp/acetate-id-records-');
    records = path.join(shared, 'node-id-ranges.json');
    for (const name of ['one', 'two']) {
      const r = await makeCliRoot(`acetate-ids-${name}-`, { userns: true });
      roots.push(r);
      const bb = await makeBusyboxRootfs(path.join(r.root, 'bb'));
      assert.equal((await cli(r, ['template', 'import', 'bb', bb])).code, 0);
    }
  });

  after(async () => {
    for (const r of roots) await destroyAllAndAssertNoLeaks({ ...r, apply: () => apply(r) });
    if (shared) await rm(shared, { recursive: true, force: true });
  });

  it("each instance's containers run with ranges the other's do not hold (uid_map of their processes)", async () => {
    const [one, two] = roots as [CliRoot, CliRoot];
    // Interleaved, as two instances working at once would: each create sees the other's ranges.
    for (const [r, name] of [
      [one, 'a'],
      [two, 'a'],
      [one, 'b'],
      [two, 'b'],
    ] as const) {
      await writeFile(path.join(r.dir, `${name}.yaml`), manifest(name));
      const out = await apply(r);
      assert.equal(out.code, 0, out.stdout + out.stderr);
    }
    const maps: { who: string; hostID: number; size: number }[] = [];
    for (const [i, r] of [one, two].entries()) {
      for (const name of ['a', 'b']) {
        const c = await waitFor(
          async () => flatContainers((await cli(r, ['get', name, '-o', 'json'])).stdout || '{"kind":"List","items":[]}').find((x) => x.phase === 'Running'),
          { what: `instance ${i} ${name} running`, timeoutMs: 60_000 },
        );
        const [inside, hostID, size] = (await readFile(`/proc/${c.pid}/uid_map`, 'utf8')).trim().split(/\s+/).map(Number);
        assert.equal(inside, 0);
        maps.push({ who: `instance ${i} ${name}`, hostID: hostID!, size: size! });
        const d = await cli(r, ['describe', name]);
        assert.match(d.stdout, new RegExp(`User ids:\\s+${hostID}-${hostID! + size! - 1} \\(its own user namespace range\\)`), d.stdout);
      }
    }
    for (const [i, m] of maps.entries()) {
      assert.ok(m.hostID > 0 && m.size === 65536, `${m.who}: a range of its own (${JSON.stringify(m)})`);
      for (const o of maps.slice(i + 1))
        assert.ok(m.hostID + m.size <= o.hostID || o.hostID + o.size <= m.hostID, `${m.who} and ${o.who} overlap: ${JSON.stringify(maps)}`);
    }
    // The records name their owners: both state dirs, each container once.
    const file = JSON.parse(await readFile(records, 'utf8')) as { records: { owner: { stateDir: string; container: string } }[] };
    assert.deepEqual(
      file.records.map((x) => `${x.owner.stateDir}:${x.owner.container}`).sort(),
      [one, two].flatMap((r) => ['a', 'b'].map((n) => `${r.stateDir}:default_${n}`)).sort(),
    );
    // plan of one announces for a new container a range no process of either runs with.
    await writeFile(path.join(one.dir, 'c.yaml'), manifest('c'));
    const plan = await cli(one, ['plan', '-f', one.dir]);
    const m = /create\s+default\/c .*root is node ids (\d+)–(\d+)/.exec(plan.stdout);
    assert.ok(m, plan.stdout);
    const announced = Number(m[1]);
    assert.ok(
      maps.every((x) => announced + 65536 <= x.hostID || x.hostID + x.size <= announced),
      `plan announces ${announced}, held: ${JSON.stringify(maps)}`,
    );
    await rm(path.join(one.dir, 'c.yaml'));
  });
});

describe('node-wide id claims: two instances, two records files (real runc)', function () {
  this.timeout(300_000);
  const roots: CliRoot[] = [];
  // Each instance its own records file (the test support's default: in its state dir), as two
  // instances given different ACETATE_ID_RECORDS have: only the node's claims keep them apart.
  const cli = (r: CliRoot, args: string[]) => runCli(args, { stateDir: r.stateDir, env: { ACETATE_RUN_DIR: r.runDir, ACETATE_HOST_USERS: '' } });
  const apply = (r: CliRoot) => cli(r, ['apply', '-f', r.dir, '--allow-empty']);
  const manifest = (name: string) => shellManifest(name, { command: 'echo ready; exec sleep 1000000', template: 'bb' });

  before(async function () {
    requirePrerequisites(await missingForContainers(), 'node-wide id claims (real runc containers)');
    for (const name of ['one', 'two']) {
      const r = await makeCliRoot(`acetate-claims-${name}-`, { userns: true });
      roots.push(r);
      const bb = await makeBusyboxRootfs(path.join(r.root, 'bb'));
      assert.equal((await cli(r, ['template', 'import', 'bb', bb])).code, 0);
    }
  });

  after(async () => {
    // The leak check includes the node's claims naming each state dir: the destroys dropped them.
    for (const r of roots) await destroyAllAndAssertNoLeaks({ ...r, apply: () => apply(r) });
  });

  it("each instance's containers run with ranges the other's do not hold, and the node's claims name each owner", async () => {
    const [one, two] = roots as [CliRoot, CliRoot];
    for (const [r, name] of [
      [one, 'a'],
      [two, 'a'],
      [one, 'b'],
      [two, 'b'],
    ] as const) {
      await writeFile(path.join(r.dir, `${name}.yaml`), manifest(name));
      const out = await apply(r);
      assert.equal(out.code, 0, out.stdout + out.stderr);
    }
    const maps: { who: string; stateDir: string; container: string; hostID: number }[] = [];
    for (const [i, r] of [one, two].entries()) {
      for (const name of ['a', 'b']) {
        const c = await waitFor(
          async () => flatContainers((await cli(r, ['get', name, '-o', 'json'])).stdout || '{"kind":"List","items":[]}').find((x) => x.phase === 'Running'),
          { what: `instance ${i} ${name} running`, timeoutMs: 60_000 },
        );
        const [inside, hostID, size] = (await readFile(`/proc/${c.pid}/uid_map`, 'utf8')).trim().split(/\s+/).map(Number);
        assert.equal(inside, 0);
        assert.equal(size, 65536);
        maps.push({ who: `instance ${i} ${name}`, stateDir: path.resolve(r.stateDir), container: `default_${name}`, hostID: hostID! });
      }
    }
    const starts = maps.map((m) => m.hostID);
    assert.equal(new Set(starts).size, starts.length, `two containers share a range: ${JSON.stringify(maps)}`);
    // The node's claims: each range named by the container that runs with it.
    for (const m of maps) {
      const claim = readClaim(NODE_ID_CLAIMS, m.hostID);
      assert.deepEqual(
        claim && { stateDir: path.resolve(claim.stateDir), container: claim.container },
        { stateDir: m.stateDir, container: m.container },
        m.who,
      );
    }
    // A container as an acetate before claims left it: no claim, and the other instance's records
    // do not show it. The other's next create does not take its range: a live process runs with it.
    const first = maps[0]!;
    await rm(path.join(NODE_ID_CLAIMS.dir, String(first.hostID)));
    await writeFile(path.join(two.dir, 'c.yaml'), manifest('c'));
    const created = await apply(two);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const c = await waitFor(
      async () => flatContainers((await cli(two, ['get', 'c', '-o', 'json'])).stdout || '{"kind":"List","items":[]}').find((x) => x.phase === 'Running'),
      { what: 'instance 1 c running', timeoutMs: 60_000 },
    );
    const cStart = Number((await readFile(`/proc/${c.pid}/uid_map`, 'utf8')).trim().split(/\s+/)[1]);
    assert.ok(!starts.includes(cStart), `c was given a range a container runs with: ${cStart} among ${starts.join(', ')}`);
    // A new boot (no marker): the next apply, with nothing to change, claims the range.
    await rm(path.join(one.runDir, 'ids-claimed'));
    const again = await apply(one);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.doesNotMatch(again.stdout, /created|replaced|started/, again.stdout);
    assert.equal(readClaim(NODE_ID_CLAIMS, first.hostID)?.container, first.container);
  });
});
