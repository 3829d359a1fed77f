/**
 * skopeo's HOME (the way another registries.conf reaches skopeo 1.9): a process holding the node
 * lock keeps it in the state dir; a read-only one (`plan`, `get`) writes nothing there.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readlinkSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { homeIsReady, prepareHome, Skopeo } from '../../src/images/skopeo.js';
import { withTmpDir } from '../support/tmpdir.js';

/** The HOME skopeo would run with (Skopeo.env is private: the one place that decides it). */
function homeOf(s: Skopeo): string {
  const env = (s as unknown as { env(): NodeJS.ProcessEnv }).env();
  return env.HOME!;
}

describe('skopeo HOME for another registries.conf', () => {
  it('a writer makes the state dir HOME once; writing it again changes nothing', async () => {
    await withTmpDir(async (dir) => {
      const conf = path.join(dir, 'registries.conf');
      await writeFile(conf, '');
      const home = path.join(dir, 'state', 'images', 'skopeo-home');
      assert.equal(homeIsReady(home, conf), false);
      const s = new Skopeo({ registriesConf: conf, homeDir: home, readOnly: () => false });
      assert.equal(homeOf(s), home);
      assert.equal(readlinkSync(path.join(home, '.config', 'containers', 'registries.conf')), conf);
      assert.equal(homeIsReady(home, conf), true);
      const before = await readdir(path.join(home, '.config', 'containers'));
      prepareHome(home, conf);
      assert.deepEqual(await readdir(path.join(home, '.config', 'containers')), before);
    });
  });

  it('a read-only process leaves a fresh state dir alone: a private HOME in the temporary dir', async () => {
    await withTmpDir(async (dir) => {
      const conf = path.join(dir, 'registries.conf');
      await writeFile(conf, '');
      const state = path.join(dir, 'state');
      const s = new Skopeo({ registriesConf: conf, homeDir: path.join(state, 'images', 'skopeo-home'), readOnly: () => true });
      const home = homeOf(s);
      assert.equal(existsSync(state), false, 'the state dir was created');
      assert.ok(home.startsWith(os.tmpdir()), home);
      assert.equal(readlinkSync(path.join(home, '.config', 'containers', 'registries.conf')), conf);
      // Removed when the process exits; removed here so the test leaves nothing.
      await rm(home, { recursive: true, force: true });
    });
  });

  it('a read-only process uses the state dir HOME when a writer already made it right', async () => {
    await withTmpDir(async (dir) => {
      const conf = path.join(dir, 'registries.conf');
      await writeFile(conf, '');
      const home = prepareHome(path.join(dir, 'skopeo-home'), conf);
      const s = new Skopeo({ registriesConf: conf, homeDir: home, readOnly: () => true });
      assert.equal(homeOf(s), home);
    });
  });
});
