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

/**
 * Two instances, each with a busybox template, ACETATE_HOST_USERS empty (the project's default: a
 * user namespace, each container its own range). `records()`: the records file they share, or
 * undefined for each its own (the test support's default, in its state dir).
 */
function twoInstances(prefix: string, records: () => string | undefined) {
  const roots: CliRoot[] = [];
  const cli = (r: CliRoot, args: string[]) =>
    runCli(args, { stateDir: r.stateDir, env: { ACETATE_RUN_DIR: r.runDir, ACETATE_HOST_USERS: '', ...(records() ? { ACETATE_ID_RECORDS: records() } : {}) } });
  const apply = (r: CliRoot) => cli(r, ['apply', '-f', r.dir, '--allow-empty']);
  const manifest = (name: string) => shellManifest(name, { command: 'echo ready; exec sleep 1000000', template: 'bb' });
  return {
    roots,
    cli,
    apply,
    manifest,
    async setUp(): Promise<void> {
      requirePrerequisites(await missingForContainers(), `${prefix}: two instances (real runc containers)`);
      for (const name of ['one', 'two']) {
        const r = await makeCliRoot(`acetate-${prefix}-${name}-`, { userns: true });
        roots.push(r);
        const bb = await makeBusyboxRootfs(path.join(r.root, 'bb'));
        assert.equal((await cli(r, ['template', 'import', 'bb', bb])).code, 0);
      }
    },
    /** The leak check includes the node's claims naming each state dir: the destroys dropped them. */
    async tearDown(): Promise<void> {
      for (const r of roots) await destroyAllAndAssertNoLeaks({ ...r, apply: () => apply(r) });
    },
    /** a and b in each, interleaved as two instances working at once would; then each running container's range, from its uid_map. */
    async createInterleaved(): Promise<{ who: string; root: CliRoot; name: string; hostID: number; size: number }[]> {
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
      const maps = [];
      for (const [i, r] of [one, two].entries()) {
        for (const name of ['a', 'b']) {
          const { hostID, size } = await runningRange(r, name, `instance ${i} ${name}`);
          maps.push({ who: `instance ${i} ${name}`, root: r, name, hostID, size });
        }
      }
      return maps;
    },
    runningRange,
  };

  async function runningRange(r: CliRoot, name: string, who: string): Promise<{ hostID: number; size: number }> {
    const c = await waitFor(
      async () => flatContainers((await cli(r, ['get', name, '-o', 'json'])).stdout || '{"kind":"List","items":[]}').find((x) => x.phase === 'Running'),
      { what: `${who} running`, timeoutMs: 60_000 },
    );
    const [inside, hostID, size] = (await readFile(`/proc/${c.pid}/uid_map`, 'utf8')).trim().split(/\s+/).map(Number);
    assert.equal(inside, 0);
    return { hostID: hostID!, size: size! };
  }
}

describe('node-wide id records: two instances, one records file (real runc)', function () {
  this.timeout(300_000);
  let shared: string;
  let records: string;
  const t = twoInstances('ids', () => records);

  before(async function () {
    shared = await mkdtemp('/tmp/acetate-id-records-');
    records = path.join(shared, 'node-id-ranges.json');
    await t.setUp();
  });

  after(async () => {
    await t.tearDown();
    if (shared) await rm(shared, { recursive: true, force: true });
  });

  it("each instance's containers run with ranges the other's do not hold (uid_map of their processes)", async () => {
    const [one, two] = t.roots as [CliRoot, CliRoot];
    const maps = await t.createInterleaved();
    for (const m of maps) {
      const d = await t.cli(m.root, ['describe', m.name]);
      assert.match(d.stdout, new RegExp(`User ids:\\s+${m.hostID}-${m.hostID + m.size - 1} \\(its own user namespace range\\)`), d.stdout);
    }
    for (const [i, m] of maps.entries()) {
      assert.ok(m.hostID > 0 && m.size === 65536, `${m.who}: a range of its own (${m.hostID}+${m.size})`);
      for (const o of maps.slice(i + 1)) assert.ok(m.hostID + m.size <= o.hostID || o.hostID + o.size <= m.hostID, `${m.who} and ${o.who} overlap`);
    }
    // The records name their owners: both state dirs, each container once.
    const file = JSON.parse(await readFile(records, 'utf8')) as { records: { owner: { stateDir: string; container: string } }[] };
    assert.deepEqual(
      file.records.map((x) => `${x.owner.stateDir}:${x.owner.container}`).sort(),
      [one, two].flatMap((r) => ['a', 'b'].map((n) => `${r.stateDir}:default_${n}`)).sort(),
    );
    // plan of one announces for a new container a range no process of either runs with.
    await writeFile(path.join(one.dir, 'c.yaml'), t.manifest('c'));
    const plan = await t.cli(one, ['plan', '-f', one.dir]);
    const m = /create\s+default\/c .*root is node ids (\d+)–(\d+)/.exec(plan.stdout);
    assert.ok(m, plan.stdout);
    const announced = Number(m[1]);
    assert.ok(
      maps.every((x) => announced + 65536 <= x.hostID || x.hostID + x.size <= announced),
      `plan announces ${announced}, held: ${maps.map((x) => x.hostID).join(', ')}`,
    );
    await rm(path.join(one.dir, 'c.yaml'));
  });
});

describe('node-wide id claims: two instances, two records files (real runc)', function () {
  this.timeout(300_000);
  // Each instance its own records file, as two instances given different ACETATE_ID_RECORDS have:
  // only the node's claims keep them apart.
  const t = twoInstances('claims', () => undefined);
  before(() => t.setUp());
  after(() => t.tearDown());

  it("each instance's containers run with ranges the other's do not hold, and the node's claims name each owner", async () => {
    const [one, two] = t.roots as [CliRoot, CliRoot];
    const maps = await t.createInterleaved();
    const starts = maps.map((m) => m.hostID);
    assert.ok(
      maps.every((m) => m.size === 65536),
      'ranges of 65536',
    );
    assert.equal(new Set(starts).size, starts.length, `two containers share a range: ${maps.map((m) => `${m.who} ${m.hostID}`).join(', ')}`);
    // The node's claims: each range named by the container that runs with it.
    for (const m of maps) {
      const claim = readClaim(NODE_ID_CLAIMS, m.hostID);
      assert.deepEqual(
        claim && { stateDir: path.resolve(claim.stateDir), container: claim.container },
        { stateDir: path.resolve(m.root.stateDir), container: `default_${m.name}` },
        m.who,
      );
    }
    // A container as an acetate before claims left it: no claim, and the other instance's records
    // do not show it. The other's next create does not take its range: a live process runs with it.
    const first = maps[0]!;
    await rm(path.join(NODE_ID_CLAIMS.dir, String(first.hostID)));
    await writeFile(path.join(two.dir, 'c.yaml'), t.manifest('c'));
    const created = await t.apply(two);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const c = await t.runningRange(two, 'c', 'instance 1 c');
    assert.ok(!starts.includes(c.hostID), `c was given a range a container runs with: ${c.hostID} among ${starts.join(', ')}`);
    // A new boot (no marker): the next apply, with nothing to change, claims the range.
    await rm(path.join(one.runDir, 'ids-claimed'));
    const again = await t.apply(one);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.doesNotMatch(again.stdout, /created|replaced|started/, again.stdout);
    assert.equal(readClaim(NODE_ID_CLAIMS, first.hostID)?.container, `default_${first.name}`);
  });
});
