/**
 * The hold a network repair puts on a container's outgoing frames (src/runtime/network/repair-hold.ts),
 * checked on a real network namespace with a real veth: what the kernel sends by itself (neighbour
 * probes, IPv6 DAD and MLD on link up) reaches the host side without the hold, and does not while
 * it is in place. Counted by the host side's rx_packets: the frames did not arrive.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { holdFrames, holdsIn, netnsOfPid, newHoldName, releaseFrames } from '../../src/runtime/network/repair-hold.js';
import { exec } from '../../src/util/exec.js';
import { waitFor } from '../support/wait.js';

/** Five broadcast frames of a made-up ether type, straight onto eth0 through a packet socket (a drop is ENOBUFS to the sender: ignored). */
const RAW_FRAMES = `import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(5):
    try:
        s.send(b"\\xff" * 6 + b"\\x02\\x00\\x00\\x00\\x00\\x01" + b"\\x88\\xb5" + b"acetate-hold-test".ljust(46, b"."))
    except OSError:
        pass  # ENOBUFS: dropped on the way out (the hold); counted on the other side either way
`;

describe('repair hold: no frame leaves a held network namespace', function () {
  this.timeout(60_000);
  let holder: ChildProcess;
  let pid: number;
  const host = `hh${process.pid % 100_000}`;
  let probeCount = 10;

  before(async () => {
    // A network namespace of its own, held by a sleeping process (killed after: the namespace and its veth go with it).
    holder = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
    pid = holder.pid!;
    await waitFor('the new network namespace', async () => (await readlinkNs(pid)) !== (await readlinkNs(process.pid)));
    await exec('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(pid)]);
    await exec('ip', ['link', 'set', host, 'up']);
    await inNs('ip', 'addr', 'add', '10.251.7.2/24', 'dev', 'eth0');
    await inNs('ip', 'link', 'set', 'eth0', 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
  });
  after(async () => {
    holder.kill('SIGKILL');
    await waitFor(`${host} gone with its namespace`, async () => (await exec('ip', ['link', 'show', host], { okExitCodes: [0, 1] })).exitCode === 1);
  });

  async function readlinkNs(p: number): Promise<string> {
    return (await exec('readlink', [`/proc/${p}/ns/net`])).stdout.trim();
  }
  async function inNs(...argv: string[]) {
    return exec('nsenter', [`--net=/proc/${pid}/ns/net`, '--', ...argv], { okExitCodes: [0, 1] });
  }
  async function rxPackets(): Promise<number> {
    return Number((await readFile(`/sys/class/net/${host}/statistics/rx_packets`, 'utf8')).trim());
  }
  /** The kernel's own traffic, no process sending: a neighbour probe (ARP) and a link brought up again (IPv6 DAD, MLD). */
  async function kernelTraffic(): Promise<number> {
    const before = await rxPackets();
    await inNs('ip', 'neigh', 'replace', `10.251.7.${probeCount++}`, 'lladdr', '02:00:00:00:00:09', 'dev', 'eth0', 'nud', 'probe');
    await inNs('ip', 'link', 'set', 'eth0', 'down');
    await inNs('ip', 'link', 'set', 'eth0', 'up');
    await new Promise((r) => setTimeout(r, 2500));
    return (await rxPackets()) - before;
  }

  it('without the hold the kernel sends; with it nothing arrives; after its release the kernel sends again', async () => {
    assert.ok((await kernelTraffic()) > 0, 'the kernel sends frames of its own (the check can fail)');

    const ns = netnsOfPid(pid);
    const hold = newHoldName();
    await holdFrames(ns, hold);
    await holdFrames(ns, hold); // idempotent
    assert.deepEqual(await holdsIn(ns), [hold]);
    assert.equal(await kernelTraffic(), 0, 'no frame left the held namespace');
    const ping = await inNs('busybox', 'ping', '-c', '1', '-W', '1', '10.251.7.1');
    assert.notEqual(ping.exitCode, 0, 'a process cannot send either');
    const loopback = await inNs('busybox', 'ping', '-c', '1', '-W', '1', '127.0.0.1');
    assert.equal(loopback.exitCode, 0, 'loopback stays open (it never leaves the namespace)');

    await releaseFrames(ns, [hold]);
    await releaseFrames(ns, [hold]); // idempotent
    assert.deepEqual(await holdsIn(ns), []);
    assert.equal((await inNs('nft', 'list', 'tables')).stdout.trim(), '', 'nothing of the hold is left');
    assert.ok((await kernelTraffic()) > 0, 'frames pass again');
  });

  it('a hold emptied by the tenant (its tables kept, their chains deleted) is made whole again by holdFrames under its name', async () => {
    const ns = netnsOfPid(pid);
    const hold = newHoldName();
    await holdFrames(ns, hold);
    // What a tenant allowed NET_ADMIN can do in its own namespace while it runs.
    // Every chain deleted (a flushed chain keeps its drop policy), the three tables kept.
    for (const [family, chain] of [
      ['netdev', 'egress'],
      ['inet', 'output'],
      ['inet', 'forward'],
      ['arp', 'output'],
    ]) {
      const r = await inNs('nft', 'delete', 'chain', family!, hold, chain!);
      assert.equal(r.exitCode, 0, `nft delete chain ${family} ${chain}: ${r.stderr}`);
    }
    assert.deepEqual(await holdsIn(ns), [hold], 'the names are still there');
    assert.ok((await kernelTraffic()) > 0, 'emptied, it holds nothing');
    await holdFrames(ns, hold);
    assert.deepEqual(await holdsIn(ns), [hold], 'one hold, not a second beside it');
    assert.equal(await kernelTraffic(), 0, 'whole again: nothing leaves');
    await releaseFrames(ns, [hold]);
  });

  it("a new eth0 made during the hold (as a repair's ADD makes it, under another name first) sends nothing, not even raw frames of a packet socket", async () => {
    const ns = netnsOfPid(pid);
    const hold = newHoldName();
    await holdFrames(ns, hold);
    try {
      // The repair's situation: eth0 deleted, a new pair made, the container side renamed eth0.
      await inNs('ip', 'link', 'del', 'eth0');
      const newHost = `${host}n`;
      await exec('ip', ['link', 'add', newHost, 'type', 'veth', 'peer', 'name', 'tmp0', 'netns', String(pid)]);
      try {
        await exec('ip', ['link', 'set', newHost, 'up']);
        await inNs('ip', 'link', 'set', 'tmp0', 'name', 'eth0');
        await inNs('ip', 'addr', 'add', '10.251.7.2/24', 'dev', 'eth0');
        await inNs('ip', 'link', 'set', 'eth0', 'up');
        const rx = async () => Number((await readFile(`/sys/class/net/${newHost}/statistics/rx_packets`, 'utf8')).trim());
        const before = await rx();
        // Frames no hook of the IP or ARP layers sees: a packet socket's (what a tenant's queue or dup rule would drain).
        const raw = await inNs('python3', '-c', RAW_FRAMES);
        assert.equal(raw.exitCode, 0, raw.stderr);
        await new Promise((r) => setTimeout(r, 2500)); // and the new link's own DAD and MLD
        assert.equal((await rx()) - before, 0, 'nothing left the new eth0');
        await releaseFrames(ns, [hold]);
        await inNs('python3', '-c', RAW_FRAMES);
        await waitFor('raw frames pass once released', async () => (await rx()) - before >= 5);
      } finally {
        await exec('ip', ['link', 'del', newHost], { okExitCodes: [0, 1] });
      }
    } finally {
      await releaseFrames(ns, [hold]);
    }
  });
});
