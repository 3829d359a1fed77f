/**
 * Files of an image read as its container sees them (layered-path.ts), on real layer dirs as
 * unpack.ts writes them: symlinks resolved inside the image, whiteouts and opaque dirs honoured,
 * nothing of the node read through a link.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readImageFile, resolveImageFile } from '../../src/images/layered-path.js';
import { exec } from '../../src/util/exec.js';

describe('image files resolved inside the image (real layer dirs)', () => {
  let work: string;
  let n = 0;
  beforeEach(async () => {
    work = await mkdtemp('/tmp/acetate-layered-');
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** Layer dirs, topmost first (as ImageRootfs.lowerDirs). */
  async function layers(count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const d = path.join(work, `l${n++}`);
      await mkdir(d);
      out.push(d);
    }
    return out;
  }

  it("an /etc that links to the node's /etc reads nothing of the node", async () => {
    const [top] = await layers(1);
    await symlink('/etc', path.join(top!, 'etc'));
    // Inside the image /etc → /etc is a loop, as the container would find it.
    await assert.rejects(readImageFile([top!], 'etc/passwd'), /too many levels of symbolic links/);
    const [other] = await layers(1);
    await symlink('/etc', path.join(other!, 'conf'));
    assert.equal(await readImageFile([other!], 'conf/passwd'), undefined, "the image's /etc, of which it has none");
    await symlink('../../../../../etc', path.join(other!, 'up'));
    assert.equal(await readImageFile([other!], 'up/passwd'), undefined, '.. stops at the image root');
  });

  it('a link to a file of the node (absolute or climbing) resolves inside the image', async () => {
    const [top] = await layers(1);
    await mkdir(path.join(top!, 'etc'));
    await writeFile(path.join(top!, 'etc', 'passwd.real'), 'app:x:1234:1234::/:/bin/sh\n');
    await symlink('/etc/passwd.real', path.join(top!, 'etc', 'passwd'));
    assert.equal(await readImageFile([top!], 'etc/passwd'), 'app:x:1234:1234::/:/bin/sh\n');
    await symlink('../../../../etc/shadow', path.join(top!, 'etc', 'group'));
    assert.equal(await readImageFile([top!], 'etc/group'), undefined, '/etc/shadow of the image: there is none');
  });

  it('relative links and links in a lower layer are followed as the container would', async () => {
    const [top, low] = await layers(2);
    await mkdir(path.join(low!, 'usr', 'etc'), { recursive: true });
    await writeFile(path.join(low!, 'usr', 'etc', 'passwd'), 'low\n');
    await symlink('usr/etc', path.join(low!, 'etc'));
    assert.equal(await readImageFile([top!, low!], 'etc/passwd'), 'low\n');
    // A file in the upper layer at the link's target wins over the lower one.
    await mkdir(path.join(top!, 'usr', 'etc'), { recursive: true });
    await writeFile(path.join(top!, 'usr', 'etc', 'passwd'), 'top\n');
    assert.equal(await readImageFile([top!, low!], 'etc/passwd'), 'top\n');
  });

  it('whiteouts hide, opaque dirs stop the merge, an upper dir hides a lower link', async () => {
    const [top, mid, low] = await layers(3);
    await mkdir(path.join(low!, 'etc'));
    await writeFile(path.join(low!, 'etc', 'passwd'), 'low\n');
    await writeFile(path.join(low!, 'etc', 'group'), 'low-group\n');
    await mkdir(path.join(mid!, 'etc'));
    await exec('mknod', ['-m', '000', path.join(mid!, 'etc', 'passwd'), 'c', '0', '0']);
    assert.equal(await readImageFile([top!, mid!, low!], 'etc/passwd'), undefined, 'whited out');
    assert.equal(await readImageFile([top!, mid!, low!], 'etc/group'), 'low-group\n', 'merged from below');
    await mkdir(path.join(top!, 'etc'));
    await exec('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(top!, 'etc')]);
    assert.equal(await readImageFile([top!, mid!, low!], 'etc/group'), undefined, 'an opaque dir shows nothing below it');
    const [t2, l2] = await layers(2);
    await symlink('/etc', path.join(l2!, 'etc'));
    await mkdir(path.join(t2!, 'etc'));
    await writeFile(path.join(t2!, 'etc', 'passwd'), 'upper dir\n');
    assert.equal(await readImageFile([t2!, l2!], 'etc/passwd'), 'upper dir\n');
    assert.equal(await resolveImageFile([t2!, l2!], 'etc/shadow'), undefined, 'the lower link is hidden by the upper dir');
  });

  it('a link loop is an error naming the path; a file where a dir should be is no file', async () => {
    const [top] = await layers(1);
    await symlink('b', path.join(top!, 'a'));
    await symlink('a', path.join(top!, 'b'));
    await assert.rejects(readImageFile([top!], 'a/passwd'), /\/a\/passwd: too many levels of symbolic links/);
    await writeFile(path.join(top!, 'etc'), 'not a dir');
    assert.equal(await readImageFile([top!], 'etc/passwd'), undefined);
  });

  it('a file larger than the bound is refused, not read', async () => {
    const [top] = await layers(1);
    await mkdir(path.join(top!, 'etc'));
    await writeFile(path.join(top!, 'etc', 'passwd'), Buffer.alloc(2048, 'a'));
    await assert.rejects(readImageFile([top!], 'etc/passwd', 1024), /2048 bytes, more than the 1024/);
  });
});
