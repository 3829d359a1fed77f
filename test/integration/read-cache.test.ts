/**
 * The read cache (src/runtime/runc/read-cache.ts): what apply or run parsed of runc's state and
 * acetate's records is kept in <runDir>/read-cache.json for the next get or plan, and never makes
 * them say what is no longer so: a container killed outside acetate shows as not running, a
 * record rewritten behind the cache's back is read again, a broken cache file is ignored, and a
 * read-only command does not write it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { waitFor } from '../support/wait.js';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { readCachePath } from '../../src/runtime/runc/read-cache.js';
import { writeJsonAtomic } from '../../src/util/json-file.js';

interface Listed {
  items: { metadata: { name: string }; spec: { resources?: { memory?: string } }; status?: { phase?: string; pid?: number; lastExitCode?: number } }[];
}

describe('read cache of get and plan (real runc)', function () {
  this.timeout(120_000);
  let dirs: CliDirs;
  let stateDir: string;
  let dir: string;

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'a.yaml'), manifest('rc-a'));
    await writeFile(path.join(dir, 'b.yaml'), manifest('rc-b'));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  const get = async (): Promise<Map<string, Listed['items'][number]>> => {
    const r = await runCli(['get', '-o', 'json'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    return new Map((JSON.parse(r.stdout) as Listed).items.map((i) => [i.metadata.name, i]));
  };

  it('is written by apply (the lock holder), read by get, and get does not lie about a container killed outside acetate', async () => {
    const ip = instancePaths(stateDir);
    const cacheFile = readCachePath(ip);
    const stateJson = (name: string) => path.join(ip.runcRoot, `default_${name}`, 'state.json');
    // A file is remembered once it is settled (older than 2 s when read): apply again until the cache holds both.
    await waitFor(
      async () => {
        const r = await runCli(['apply', '-f', dir], { stateDir });
        assert.equal(r.code, 0, r.stderr);
        const text = await readFile(cacheFile, 'utf8').catch(() => '');
        return text.includes(JSON.stringify(stateJson('rc-a'))) && text.includes(JSON.stringify(stateJson('rc-b')));
      },
      { what: 'the read cache holds both containers', timeoutMs: 60_000, intervalMs: 1_000 },
    );
    const before = await get();
    assert.equal(before.get('rc-a')?.status?.phase, 'Running');
    assert.equal(before.get('rc-b')?.status?.phase, 'Running');
    const pid = before.get('rc-a')!.status!.pid!;
    const cacheStamp = (await stat(cacheFile)).mtimeMs;

    // Killed outside acetate: the cache still names its init as running; get checks /proc.
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await get()).get('rc-a')?.status?.phase !== 'Running', { what: 'get shows rc-a not running', timeoutMs: 30_000 });
    const after = await get();
    const killed = after.get('rc-a')?.status;
    assert.notEqual(killed?.phase, 'Running', JSON.stringify(killed));
    assert.equal(killed?.lastExitCode, 137, `killed by SIGKILL: its exit as conmon recorded it (${JSON.stringify(killed)})`);
    assert.equal(killed?.pid, undefined, 'no pid for a process that is gone');
    assert.equal(after.get('rc-b')?.status?.phase, 'Running', 'the other one is untouched');
    assert.equal((await stat(cacheFile)).mtimeMs, cacheStamp, 'get (read-only) did not write the cache');

    // A record rewritten behind the cache's back (its stamp changes): get reads the file again.
    const recordFile = path.join(ip.containersDir, 'default_rc-b', 'record.json');
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as { spec: { resources: { memoryBytes?: number } } };
    record.spec.resources.memoryBytes = 48 * 2 ** 20;
    await writeJsonAtomic(recordFile, record);
    assert.equal((await get()).get('rc-b')?.spec.resources?.memory, '48Mi', 'the record as it is now, not as cached');

    // A broken cache file is ignored.
    await writeFile(cacheFile, '{"version":1,"bootId":');
    const broken = await get();
    assert.equal(broken.get('rc-b')?.status?.phase, 'Running');
    assert.equal(broken.get('rc-b')?.spec.resources?.memory, '48Mi');
    assert.notEqual(broken.get('rc-a')?.status?.phase, 'Running');
  });
});
