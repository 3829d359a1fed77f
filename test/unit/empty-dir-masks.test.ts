/**
 * The empty dir bound over masked dirs (src/runtime/walls/empty-dir-masks.ts): made 0555 whatever
 * the umask, and refused (runc's own masks then) when it is anything but an empty dir of acetate's.
 */
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureEmptyDir, maskableByEmptyDir } from '../../src/runtime/walls/empty-dir-masks.js';
import { MASKED_PATHS } from '../../src/runtime/walls/masks.js';

describe('empty-dir masks', () => {
  let stateDir: string;
  beforeEach(async () => (stateDir = await mkdtemp(path.join(os.tmpdir(), 'acetate-empty-'))));
  afterEach(async () => rm(stateDir, { recursive: true, force: true }));

  it('makes <state>/empty 0555 whatever the umask, and mends a mode changed since', async () => {
    const old = process.umask(0o077);
    try {
      assert.equal(ensureEmptyDir(stateDir), path.join(stateDir, 'empty'));
    } finally {
      process.umask(old);
    }
    assert.equal((await lstat(path.join(stateDir, 'empty'))).mode & 0o7777, 0o555);
    await chmod(path.join(stateDir, 'empty'), 0o777);
    assert.equal(ensureEmptyDir(stateDir), path.join(stateDir, 'empty'));
    assert.equal((await lstat(path.join(stateDir, 'empty'))).mode & 0o7777, 0o555);
  });

  it('refuses anything but an empty dir: one with a file in it, a file, a symlink to a dir', async () => {
    const empty = path.join(stateDir, 'empty');
    await mkdir(empty);
    await writeFile(path.join(empty, 'x'), 'planted');
    assert.equal(ensureEmptyDir(stateDir), undefined);
    await rm(empty, { recursive: true });
    await writeFile(empty, '');
    assert.equal(ensureEmptyDir(stateDir), undefined);
    await rm(empty);
    await symlink('/etc', empty);
    assert.equal(ensureEmptyDir(stateDir), undefined);
  });

  it('binds only masked dirs outside /proc (runc refuses binds inside it) that are dirs on the node', () => {
    const dirs = maskableByEmptyDir((p) => p === '/sys/firmware' || p === '/proc/acpi');
    assert.deepEqual(dirs, ['/sys/firmware']);
    assert.ok(dirs.every((p) => MASKED_PATHS.includes(p)));
  });
});
