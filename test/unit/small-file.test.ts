/** util/small-file.ts writeFileAtomicSync: the atomic write of acetate's records (writeSmallFileAtomic, writeJsonAtomic, the id records). */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomicSync } from '../../src/util/small-file.js';

describe('writeFileAtomicSync', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'acetate-small-file-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file whole with the mode asked for, whatever the umask, and leaves no temp file', () => {
    const file = path.join(dir, 'record.json');
    writeFileSync(file, 'old', { mode: 0o600 });
    const before = process.umask(0o077);
    try {
      writeFileAtomicSync(file, '{"new":true}\n', 0o644);
    } finally {
      process.umask(before);
    }
    assert.equal(readFileSync(file, 'utf8'), '{"new":true}\n');
    assert.equal(statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(dir), ['record.json']);
  });

  it('replaces a symlink planted at the path instead of writing through it', () => {
    const target = path.join(dir, 'elsewhere');
    writeFileSync(target, 'not yours');
    const file = path.join(dir, 'status.json');
    symlinkSync(target, file);
    writeFileAtomicSync(file, 'mine', 0o600);
    assert.equal(readFileSync(target, 'utf8'), 'not yours', 'the link target is untouched');
    assert.equal(lstatSync(file).isFile(), true);
    assert.equal(readFileSync(file, 'utf8'), 'mine');
  });

  it('a failed rename leaves what was there and no temp file', () => {
    const file = path.join(dir, 'a-dir');
    mkdirSync(path.join(file, 'inside'), { recursive: true });
    assert.throws(() => writeFileAtomicSync(file, 'x', 0o600), /EISDIR|ENOTEMPTY|EEXIST/);
    assert.deepEqual(readdirSync(dir), ['a-dir']);
    assert.deepEqual(readdirSync(file), ['inside']);
  });
});
