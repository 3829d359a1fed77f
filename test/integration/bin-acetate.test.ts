/**
 * bin/acetate as a user installs it (a symlink in a PATH dir): a shell script that execs node with
 * the loop's memory flags for `acetate run` only (the short commands run without them).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';
import { BIN } from '../support/cli.js';
import { CliProcess } from '../support/cli-process.js';
import { cleanupStateDir, makeTmpStateDir } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';

const LOOP_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=20'];

describe('bin/acetate', () => {
  let stateDir: string;
  let run: CliProcess | undefined;
  beforeEach(async () => {
    stateDir = await makeTmpStateDir('acetate-bin-');
  });
  afterEach(async () => {
    if (run && run.child.exitCode === null) await run.stop();
    run = undefined;
    await cleanupStateDir(stateDir);
  });

  it('runs through a symlink, as installed; `run` is node with the loop flags, a short command node without them', async () => {
    const installed = path.join(stateDir, 'bin');
    await mkdir(installed);
    await symlink(BIN, path.join(installed, 'acetate'));
    const version = await exec(path.join(installed, 'acetate'), ['--version']);
    assert.match(version.stdout, /^acetate \d+\.\d+\.\d+/);

    // A short command: the node the script execs (a recording node first in PATH, as a user's PATH finds node).
    const fakeBin = path.join(stateDir, 'fake-bin');
    const argsFile = path.join(stateDir, 'node-args');
    await mkdir(fakeBin);
    await writeFile(path.join(fakeBin, 'node'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\nexec '${process.execPath}' "$@"\n`, { mode: 0o755 });
    await exec(path.join(installed, 'acetate'), ['--state-dir', stateDir, 'get'], { env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` } });
    const nodeArgs = (await readFile(argsFile, 'utf8')).split('\n');
    assert.ok(
      nodeArgs.some((a) => a.endsWith(path.join('dist', 'cli', 'main.js'))),
      `node ran the CLI: ${nodeArgs.join(' ')}`,
    );
    for (const f of LOOP_FLAGS) assert.ok(!nodeArgs.includes(f), `get runs without ${f}: ${nodeArgs.join(' ')}`);

    // The loop: the same process (the script execs node), with the flags.
    const manifests = path.join(stateDir, 'manifests');
    await mkdir(manifests);
    run = new CliProcess(['run', '-f', manifests, '--metrics-addr', '0'], { stateDir, entry: BIN });
    const argv = await waitFor(
      'acetate run is node',
      async () => {
        const a = (await readFile(`/proc/${run!.pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
        return a[0]?.endsWith('node') ? a : undefined;
      },
      { timeoutMs: 10_000 },
    );
    for (const f of LOOP_FLAGS) assert.ok(argv.includes(f), `run gets ${f}: ${argv.join(' ')}`);
    assert.ok(
      argv.some((a) => a.endsWith(path.join('dist', 'cli', 'main.js'))),
      argv.join(' '),
    );
  });
});
