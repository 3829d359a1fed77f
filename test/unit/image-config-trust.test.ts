/** An image's config and references are untrusted input: NUL bytes, ids out of range, overlong names. */
import assert from 'node:assert/strict';
import { effectiveProcess, resolveUser } from '../../src/images/process.js';
import { parseReference, transportReference } from '../../src/api/image-reference.js';
import { platformDigest } from '../../src/images/skopeo.js';
import { createHash } from 'node:crypto';

const spec = { command: [], args: [], env: [], workingDir: '' };

describe('image config and references as untrusted input', () => {
  it('a NUL byte in Env, Cmd, Entrypoint, WorkingDir or User is refused naming the field', () => {
    assert.throws(() => effectiveProcess(spec, { Cmd: ['/bin/sh'], Env: ['A=1', 'B=x\0y'] }), /the image's Env\[1\] holds a NUL byte/);
    assert.throws(() => effectiveProcess(spec, { Entrypoint: ['/bin/\0sh'] }), /the image's Entrypoint\[0\] holds a NUL byte/);
    assert.throws(() => effectiveProcess(spec, { Cmd: ['/bin/sh'], WorkingDir: '/a\0' }), /the image's WorkingDir holds a NUL byte/);
    assert.throws(() => effectiveProcess(spec, { Cmd: [1 as unknown as string] }), /the image's Cmd\[0\] is not a string/);
    assert.throws(() => resolveUser('ro\0ot', {}), /NUL byte/);
    assert.deepEqual(effectiveProcess(spec, { Cmd: ['/bin/sh'], Env: ['A=1'] }).env, [{ name: 'A', value: '1' }]);
  });

  it('uids and gids beyond 32 bits (or (uid_t)-1) are refused, from the config and from passwd', () => {
    assert.throws(() => resolveUser('100000000000000000000', {}), /uid 100000000000000000000 is not between 0 and 4294967294/);
    assert.throws(() => resolveUser('4294967295:0', {}), /uid 4294967295 is not between/);
    assert.throws(() => resolveUser('0:4294967295', {}), /gid 4294967295 is not between/);
    assert.throws(() => resolveUser('app', { passwd: 'app:x:1e20:0::/:/bin/sh\n' }), /uid 100000000000000000000 is not between/);
    assert.throws(() => resolveUser('app', { passwd: 'app:x:abc:0::/:/bin/sh\n' }), /uid NaN is not between/);
    assert.deepEqual(resolveUser('4294967294:7', {}), { uid: 4294967294, gid: 7 });
  });

  it('a repository name over 255 characters is refused; name:tag@digest is asked for by the digest', () => {
    assert.throws(() => parseReference(`example.com/${'a'.repeat(300)}:1`), /repository name is 312 characters long, more than 255/);
    const d = `sha256:${'a'.repeat(64)}`;
    assert.equal(transportReference(parseReference(`example.com/app:1.0@${d}`)), `example.com/app@${d}`);
    assert.equal(transportReference(parseReference('busybox')), 'docker.io/library/busybox:latest');
  });

  it('a manifest whose bytes do not hash to the digest asked for is refused, naming both', () => {
    const raw = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    const own = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    const asked = `sha256:${'b'.repeat(64)}`;
    assert.equal(platformDigest(raw, 'r', own), own);
    assert.throws(() => platformDigest(raw, 'r', asked), new RegExp(`answered for ${asked} with a manifest whose digest is ${own}`));
  });
});
