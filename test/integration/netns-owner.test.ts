/**
 * A user-namespaced container's network namespace is owned by a user namespace of its range
 * (src/runtime/network/netns.ts), so `runc exec` 1.1.5, which joins the user namespace first, may
 * then join the network namespace (network-cli.test.ts runs it). Real namespaces, real nsenter.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { waitFor } from '../support/wait.js';
import { createNetns, entersOwnNetns, isNsMounted, netnsPathOf, ownerFileOf, removeNetns } from '../../src/runtime/network/netns.js';

const OWNER = { hostID: 1_310_000_000, size: 65536 };

describe('network namespaces owned by the container’s user namespace', function () {
  this.timeout(60_000);
  let runDir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    runDir = await mkdtemp(path.join(tmpdir(), 'acetate-netns-owner-'));
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const id of ['owned', 'node']) await removeNetns(netnsPathOf(runDir, id));
    const mounts = (await exec('findmnt', ['-rn', '-o', 'TARGET'])).stdout;
    assert.ok(!mounts.includes(runDir), `nothing left mounted under ${runDir}`);
    await rm(runDir, { recursive: true, force: true });
  });

  /** A `sleep` in the given namespaces (nsenter joins the user namespace first, as runc does). */
  async function sleeper(args: string[]): Promise<number> {
    const c = spawn('nsenter', [...args, 'sleep', '60'], { stdio: 'ignore' });
    children.push(c);
    // In its namespaces once nsenter has exec'd sleep (it joins them before).
    await waitFor(async () => c.exitCode === null && (await readFile(`/proc/${c.pid}/comm`, 'utf8').catch(() => '')).trim() === 'sleep', {
      what: `nsenter ${args.join(' ')} running sleep`,
    });
    return c.pid!;
  }

  it('makes the pair, maps the range, opens the low ports, and is idempotent', async () => {
    const net = netnsPathOf(runDir, 'owned');
    const user = ownerFileOf(net);
    assert.equal(user, path.join(runDir, 'userns', 'owned'));
    await createNetns(net, OWNER);
    assert.ok(isNsMounted(net) && isNsMounted(user));
    const map = await exec('nsenter', [`--user=${user}`, 'cat', '/proc/self/uid_map']);
    assert.deepEqual(map.stdout.trim().split(/\s+/).map(Number), [0, OWNER.hostID, OWNER.size]);
    const gmap = await exec('nsenter', [`--user=${user}`, 'cat', '/proc/self/gid_map']);
    assert.deepEqual(gmap.stdout.trim().split(/\s+/).map(Number), [0, OWNER.hostID, OWNER.size]);
    // The namespace's low ports are open to any uid of the container.
    const inside = await exec('nsenter', [`--user=${user}`, `--net=${net}`, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start']);
    assert.equal(inside.stdout.trim(), '0');
    const before = [(await stat(net)).ino, (await stat(user)).ino];
    await createNetns(net, OWNER);
    assert.deepEqual([(await stat(net)).ino, (await stat(user)).ino], before, 'an existing pair is kept');
  });

  it("the pair's network namespace is owned by its user namespace, one node root made by the node's; exec's check tells them apart", async () => {
    const owned = netnsPathOf(runDir, 'owned');
    const nodeOwned = netnsPathOf(runDir, 'node');
    await createNetns(owned, OWNER); // kept from the test before, or made here
    await createNetns(nodeOwned);
    assert.ok(!isNsMounted(ownerFileOf(nodeOwned)));
    // The owner of each network namespace, as the kernel says (lsns's ONS: NS_GET_USERNS), of a
    // process in it: the pair's is the held user namespace, the other's the node's.
    const ownerOf = async (pid: number) => {
      const line = (await exec('lsns', ['-t', 'net', '-n', '-o', 'NS,ONS', '-p', String(pid)])).stdout.trim();
      return Number(line.split(/\s+/)[1]);
    };
    const inOwned = await sleeper([`--net=${owned}`]);
    const inNodeOwned = await sleeper([`--net=${nodeOwned}`]);
    assert.equal(await ownerOf(inOwned), (await stat(ownerFileOf(owned))).ino);
    assert.equal(await ownerOf(inNodeOwned), (await stat('/proc/self/ns/user')).ino);
    // What `acetate exec` checks before runc exec: the process's user namespace against the owner.
    const inPair = await sleeper([`--user=${ownerFileOf(owned)}`, `--net=${owned}`]);
    assert.equal(entersOwnNetns(inPair, owned), true);
    assert.equal(entersOwnNetns(inPair, nodeOwned), false);
    assert.equal(entersOwnNetns(inNodeOwned, nodeOwned), true, "a process with the node's ids enters any");
    assert.equal(entersOwnNetns(999_999_999, owned), false, 'no such process');
  });

  it('keeps a pair in use whose owner file is gone when told to (a repair), makes it again otherwise; removes both files', async () => {
    const net = netnsPathOf(runDir, 'owned');
    await createNetns(net, OWNER);
    const netIno = (await stat(net)).ino;
    await exec('umount', [ownerFileOf(net)]);
    await createNetns(net, OWNER, { keep: true });
    assert.equal((await stat(net)).ino, netIno, 'kept: a process may be in it');
    assert.ok(!isNsMounted(ownerFileOf(net)));
    await createNetns(net, OWNER);
    assert.ok(isNsMounted(net) && isNsMounted(ownerFileOf(net)), 'made again, with its owner');
    await removeNetns(net);
    assert.deepEqual(await readdir(path.join(runDir, 'userns')), []);
    assert.ok(!isNsMounted(net));
    await removeNetns(net); // idempotent
  });
});
