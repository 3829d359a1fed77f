/** The shared bounded read of untrusted files (src/util/bounded-read.ts). */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openForReadNonBlocking, readFdPrefix } from '../../src/util/bounded-read.js';

describe('bounded read', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'acetate-bounded-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads no more than the size it is given, and what there is of a shorter file', () => {
    const f = path.join(dir, 'f');
    writeFileSync(f, '0123456789');
    const fd = openForReadNonBlocking(f);
    try {
      assert.equal(readFdPrefix(fd, 4).toString(), '0123'); // a file grown since its fstat is cut there
      assert.equal(readFdPrefix(fd, 64).toString(), '0123456789'); // one shrunk since gives what it has
      assert.equal(readFdPrefix(fd, 0).length, 0);
    } finally {
      closeSync(fd);
    }
  });

  it('passes extra flags: O_NOFOLLOW refuses a final symlink', () => {
    writeFileSync(path.join(dir, 'target'), 'x');
    symlinkSync(path.join(dir, 'target'), path.join(dir, 'link'));
    assert.throws(() => openForReadNonBlocking(path.join(dir, 'link'), constants.O_NOFOLLOW), { code: 'ELOOP' });
  });
});
