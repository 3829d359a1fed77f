/**
 * The ranges live processes run with (mapped-ids.ts), as the allocator and a first start read
 * them between two full reads of /proc: a namespace another program maps after the last full read
 * (a new process, or a namespace seen before its uid_map was written) is found at the next read
 * a second later, not up to MAPPED_TTL_MS later (a hostile round found a create given a range a
 * process had been mapped onto 0.4 s before, with the full read kept 30 s).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readlink, writeFile } from 'node:fs/promises';
import { forgetMappedRanges, MAPPED_FRESH_MS, mappedRanges } from '../../src/runtime/walls/mapped-ids.js';

/** A real process in a new user namespace, not mapped yet (root maps it, as runc does). */
async function unmappedNamespace(): Promise<ChildProcess> {
  const child = spawn('unshare', ['--user', 'sleep', '30'], { stdio: 'ignore' });
  const ours = await readlink('/proc/self/ns/user');
  for (let i = 0; i < 100 && (await readlink(`/proc/${child.pid}/ns/user`).catch(() => ours)) === ours; i++) await new Promise((r) => setTimeout(r, 20));
  return child;
}

/** A read a little later each time: one younger than MAPPED_FRESH_MS is used as it is. */
let clock = Date.now();
const has = (hostID: number) => mappedRanges((clock += MAPPED_FRESH_MS + 1)).some((m) => m.hostID === hostID);

describe('mapped-ids: what a read between two full reads of /proc sees', () => {
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      if (c.exitCode === null && c.signalCode === null) await once(c, 'exit');
    }
    forgetMappedRanges();
  });

  it('a process mapped after the last full read is seen at the next read', async () => {
    forgetMappedRanges();
    const hostID = 3_900_000_000;
    assert.equal(has(hostID), false, 'the full read');
    const child = await unmappedNamespace();
    children.push(child);
    await writeFile(`/proc/${child.pid}/uid_map`, `0 ${hostID} 65536`);
    assert.equal(has(hostID), true, 'a new process, looked at');
  });

  it('a namespace seen before its uid_map was written is looked at again', async () => {
    forgetMappedRanges();
    const hostID = 3_900_065_536;
    const child = await unmappedNamespace();
    children.push(child);
    assert.equal(has(hostID), false, 'the full read: seen, not mapped yet');
    await writeFile(`/proc/${child.pid}/uid_map`, `0 ${hostID} 65536`);
    assert.equal(has(hostID), true, 'mapped since');
    // Gone: no longer counted at the next read.
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(has(hostID), false, 'ended');
  });
});
