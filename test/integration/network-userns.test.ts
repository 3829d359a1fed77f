/**
 * network: bridge for a container with a user namespace (the default): its network namespace is
 * owned by a user namespace of its range (src/runtime/network/netns.ts), which runc joins, so exec
 * enters it; what repairs and restarts do with that pair. Real CNI plugins, namespaces and runc;
 * traffic only to 127.0.0.1 and this test's container.
 */
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { executeAction } from '../../src/apply/execute.js';
import { plan } from '../../src/plan/plan.js';
import { isNsMounted } from '../../src/runtime/network/netns.js';
import { exec } from '../../src/util/exec.js';
import { snapshotNetworkLeaks } from '../support/network-leaks.js';
import { bridgeStatePerTest, desiredOf, freePort, httpGet, published, webRequest } from '../support/network-test.js';
import { waitFor } from '../support/wait.js';

describe('network: bridge with a user namespace (real CNI plugins)', function () {
  this.timeout(120_000);
  const suite = bridgeStatePerTest();

  it("a user-namespaced container's network namespace is its user namespace's (exec enters it); one an older acetate made gets its own at the next start, same address", async () => {
    const st = suite.st();
    const n = suite.n();
    const port = await freePort();
    const req = webRequest('uweb', published(port));
    req.spec = { ...req.spec, security: { ...req.spec.security, hostUsers: false } };
    await st.runtime.create(req);
    const first = await st.runtime.start('default/uweb');
    const ip = (await st.runtime.get('default/uweb'))?.network?.ip;
    await waitFor(() => httpGet('127.0.0.1', port));
    const paths = st.runtime.paths;
    const netFile = `${paths.runDir}/netns/default_uweb`;
    const userFile = `${paths.runDir}/userns/default_uweb`;
    const stateFile = `${paths.containersDir}/default_uweb/network.json`;
    const ino = async (f: string) => (await stat(f)).ino;
    // runc exec joins the user namespace first, then the network namespace it owns.
    const probe = async () => st.runtime.exec('default/uweb', { command: ['sh', '-c', 'cat /proc/self/uid_map; ls /sys/class/net'], stdio: 'capture' });
    let r = await probe();
    assert.equal(r.exitCode, 0, r.output);
    assert.match(r.output!, /^\s*0\s+(\d+)\s+65536\n/);
    assert.match(r.output!, /eth0\nlo\n$/);
    assert.equal(await ino(`/proc/${first.pid}/ns/user`), await ino(userFile), 'runc joined the held user namespace');
    const owner = (JSON.parse(await readFile(stateFile, 'utf8')) as { owner?: string }).owner;
    assert.match(owner ?? '', /^\d+\+65536$/);

    /** The problem seen, the plan's one action a network repair, carried out. */
    const repairPlanned = async (problem: RegExp) => {
      const broken = (await st.runtime.get('default/uweb'))!;
      assert.match(broken.network?.problem ?? '', problem);
      const fix = plan({ desired: new Map([['default/uweb', desiredOf(req)]]), actual: new Map([['default/uweb', broken]]), complete: true });
      assert.deepEqual(
        fix.actions.map((x) => x.kind),
        ['network'],
      );
      await executeAction(fix.actions[0]!, { runtime: st.runtime });
    };
    // Its owner's file unmounted by hand while it runs: a problem, repaired by binding the
    // process's own user namespace again (same pid, same namespace), and exec works after.
    await exec('umount', [userFile]);
    await repairPlanned(/user namespace .* of its network namespace is gone/);
    assert.equal(await ino(`/proc/${first.pid}/ns/user`), await ino(userFile), 'bound again from the process');
    assert.equal((await st.runtime.get('default/uweb'))?.process.pid, first.pid);
    assert.equal((await probe()).exitCode, 0);

    // What a failed or interrupted repair leaves: no network.json, the veth gone. The next repair
    // keeps the process's own namespaces (never a new one beside it): eth0 is back where it runs.
    const { hostVeth } = JSON.parse(await readFile(stateFile, 'utf8')) as { hostVeth: string };
    await rm(stateFile);
    await exec('ip', ['link', 'del', hostVeth]);
    await repairPlanned(/never set up/);
    assert.equal(await ino(`/proc/${first.pid}/ns/net`), await ino(netFile), "the namespace file is still the process's");
    assert.equal((await exec('nsenter', [`--net=/proc/${first.pid}/ns/net`, 'cat', '/sys/class/net/eth0/operstate'])).stdout.trim(), 'up');
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-uweb\n');

    // What an older acetate left: network.json without an owner (its namespace the node's).
    await st.runtime.stop('default/uweb', { graceSeconds: 0 });
    const old = JSON.parse(await readFile(stateFile, 'utf8')) as Record<string, unknown>;
    delete old.owner;
    await writeFile(stateFile, JSON.stringify(old));
    const again = await st.runtime.start('default/uweb');
    // A new attachment (namespace inode numbers are reused: the veth, named at random, is not).
    const now = JSON.parse(await readFile(stateFile, 'utf8')) as { hostVeth?: string };
    assert.notEqual(now.hostVeth, old.hostVeth, 'a new network namespace, a new veth');
    assert.equal(await ino(`/proc/${again.pid}/ns/user`), await ino(userFile));
    assert.equal((await st.runtime.get('default/uweb'))?.network?.ip, ip, 'same address');
    assert.equal((JSON.parse(await readFile(stateFile, 'utf8')) as { owner?: string }).owner, owner);
    r = await probe();
    assert.equal(r.exitCode, 0, r.output);
    assert.equal(await waitFor(() => httpGet('127.0.0.1', port)), 'hello-uweb\n');

    // A restart as is keeps the pair.
    await st.runtime.stop('default/uweb', { graceSeconds: 0 });
    await st.runtime.start('default/uweb');
    const kept = JSON.parse(await readFile(stateFile, 'utf8')) as { hostVeth?: string };
    assert.equal(kept.hostVeth, now.hostVeth, 'the same attachment across a restart');
    assert.ok(isNsMounted(netFile) && isNsMounted(userFile));
    await st.runtime.remove('default/uweb', { keepPrivateArea: false });
    const gone = await snapshotNetworkLeaks(st.dir, n);
    assert.deepEqual([gone.netns, gone.userns], [[], []], 'both namespace files gone with it');
  });
});
