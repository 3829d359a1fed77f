/**
 * Layers: each verified against its digest, unpacked ONCE into its own directory, atomically
 * (into a temporary dir, renamed into place), in overlayfs' format so it can be a lower layer as it
 * is:
 *
 * - OCI whiteouts become overlay whiteouts: `.wh.NAME` → a 0:0 character device NAME;
 *   `.wh..wh..opq` → the `trusted.overlay.opaque=y` xattr on its directory (what containerd's
 *   overlay snapshotter and Docker's overlay2 driver do), and `user.overlay.opaque=y`, which
 *   overlayfs reads instead when mounted in a user namespace (`userxattr`, hostUsers: false).
 * - Extraction is GNU tar's, with its default protections, which is what runs on every Debian node
 *   and is among the most scrutinised extractors there is: member names with `..` components are
 *   refused, leading `/` is stripped, and a symlink whose target is absolute or has `..` is first
 *   created as a placeholder regular file and turned into the link only at the end, so no later
 *   member can be written through it. Each layer is unpacked into an EMPTY directory, so no symlink
 *   of another layer or of the node can be on the way. Hard links to names outside the archive's
 *   directory are refused the same way.
 * - Owners, modes, setuid bits and `security.capability` are kept (as root, as containerd does);
 *   device nodes are created as containerd does as root: opening one is still governed by the
 *   container's device cgroup, which runc makes deny-all except its default devices.
 * - The uncompressed stream is hashed while tar reads it and must equal the config's diff_id.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, rename, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { exec } from '../util/exec.js';
import { ImageStoreError } from './errors.js';
import { LayerBudget, LayerSpaceError } from './unpack-limits.js';
import { terminalText } from '../util/terminal-text.js';

const DIGEST = /^sha256:([a-f0-9]{64})$/;

export function digestHex(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new ImageStoreError(`'${digest}' is not a sha256 digest`);
  return m[1]!;
}

/** sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return `sha256:${h.digest('hex')}`;
}

/** Throws unless the blob's content has the digest it is named by. */
export async function verifyBlob(file: string, digest: string, what: string): Promise<void> {
  let actual: string;
  try {
    actual = await sha256File(file);
  } catch (err) {
    throw new ImageStoreError(`${what} ${digest}: cannot read the blob`, { cause: err });
  }
  if (actual !== digest) throw new ImageStoreError(`${what} ${digest}: content does not match its digest (got ${actual}); the blob is corrupt`);
}

type Compression = 'gzip' | 'zstd' | 'none';

export function compressionOf(mediaType: string): Compression {
  if (/gzip$/.test(mediaType)) return 'gzip';
  if (/zstd$/.test(mediaType)) return 'zstd';
  if (/tar$/.test(mediaType)) return 'none';
  throw new ImageStoreError(`unsupported layer media type ${mediaType}`);
}

function decompressor(c: Compression): Transform | undefined {
  if (c === 'gzip') return createGunzip();
  return undefined;
}

export interface UnpackRequest {
  /** The compressed blob (already verified against its digest). */
  blob: string;
  mediaType: string;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffID: string;
  /** The dir that holds one subdir per layer, named by diff_id hex. */
  layersDir: string;
}

/** Path of a layer's directory (overlay lower dir). */
export function layerDir(layersDir: string, diffID: string): string {
  return path.join(layersDir, digestHex(diffID));
}

/** Unpacks a layer unless it is already there; returns its directory. */
export async function unpackLayer(req: UnpackRequest): Promise<string> {
  const target = layerDir(req.layersDir, req.diffID);
  if (await isDir(target)) return target;
  const tmp = path.join(req.layersDir, `.unpack-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  try {
    const budget = new LayerBudget(req.layersDir, `layer ${req.diffID}`);
    const diff = await extract(req.blob, compressionOf(req.mediaType), tmp, budget);
    if (diff !== req.diffID) throw new ImageStoreError(`layer ${req.diffID}: the uncompressed content has digest ${diff}; the layer is corrupt`);
    await convertWhiteouts(tmp, `layer ${req.diffID}`);
    try {
      await rename(tmp, target);
    } catch (err) {
      // Another pull unpacked the same layer meanwhile: theirs is as good as ours.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await isDir(target))) await rm(tmp, { recursive: true, force: true });
      else throw err;
    }
    return target;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof ImageStoreError) throw err;
    throw new ImageStoreError(`cannot unpack layer ${req.diffID}`, { cause: err });
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Streams blob → decompress → (count, hash, tar -x); returns the uncompressed stream's digest. */
async function extract(blob: string, compression: Compression, dir: string, budget: LayerBudget): Promise<string> {
  const tar = spawn(
    'tar',
    [
      '-x',
      '-f',
      '-',
      '-C',
      dir,
      '--numeric-owner',
      '--same-owner',
      '--same-permissions',
      '--xattrs',
      '--xattrs-include=security.capability',
      '--no-overwrite-dir',
    ],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  tar.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (code) => resolve(code));
  });
  const hash = createHash('sha256');
  // GNU tar stops reading at the end-of-archive blocks and exits, leaving the record padding
  // unread: the rest of the stream is still hashed (the diff_id covers all of it), and a write to
  // a tar that is gone (EPIPE) is expected, not an error.
  let tarGone = false;
  void exited.then(
    () => (tarGone = true),
    () => (tarGone = true),
  );
  tar.stdin.on('error', () => undefined);
  let zstd: ReturnType<typeof spawn> | undefined;
  let source: Readable;
  let feeding: Promise<void> = Promise.resolve();
  if (compression === 'zstd') {
    zstd = spawn('zstd', ['-d', '-c', '-q', blob], { stdio: ['ignore', 'pipe', 'ignore'] });
    source = zstd.stdout!;
  } else {
    const out = decompressor(compression) ?? new PassThrough();
    feeding = pipeline(createReadStream(blob), out);
    source = out;
  }
  try {
    const copying = (async () => {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        budget.add(chunk.length); // throws past a bound: tar is killed below, the caller removes the dir
        hash.update(chunk);
        if (tarGone || tar.stdin.destroyed) continue;
        if (!tar.stdin.write(chunk)) await Promise.race([once(tar.stdin, 'drain'), exited]);
      }
      tar.stdin.end();
    })();
    await Promise.all([copying, feeding]);
  } catch (err) {
    tar.kill('SIGKILL');
    zstd?.kill('SIGKILL');
    await exited.catch(() => undefined);
    if (err instanceof LayerSpaceError) throw err;
    throw new ImageStoreError(`cannot decompress the layer blob ${blob}`, { cause: err });
  }
  const code = await exited;
  // tar stopped at ENOSPC ("No space left on device", or a short write: "Wrote only N of M bytes");
  // the stream was still read to its end (hashing), so what the layer needs is known.
  if (code !== 0 && /No space left on device|Wrote only \d+ of \d+ bytes/.test(stderr)) throw budget.noSpace(terminalText(stderr.trim(), 300));
  if (code !== 0) throw new ImageStoreError(`tar failed to unpack ${blob} (exit ${code}): ${terminalText(stderr.trim(), 2000)}`);
  return `sha256:${hash.digest('hex')}`;
}

/** Turns the OCI whiteouts of an unpacked layer into overlayfs whiteouts. */
async function convertWhiteouts(dir: string, what: string): Promise<void> {
  // find(1) lists without following symlinks; the names come back NUL-separated.
  const { stdout } = await exec('find', [dir, '-name', '.wh.*', '-print0']);
  for (const p of stdout.split('\0').filter(Boolean)) {
    // Other `.wh..wh.*` names are aufs metadata (hard-link dirs...): dropped, as containerd does.
    const parent = path.dirname(p);
    const base = path.basename(p);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue; // under a directory an earlier whiteout removed
    if (st.isDirectory()) {
      if (base.startsWith('.wh..wh.') && base !== '.wh..wh..opq') {
        await rm(p, { recursive: true, force: true }); // aufs' hard-link dir (.wh..wh.plnk): dropped
        continue;
      }
      // An OCI whiteout is an empty file: a directory by that name is a broken (or crafted) layer.
      throw new ImageStoreError(
        `${what}: the whiteout ${terminalText(path.relative(dir, p), 300)} is a directory (a whiteout is an empty file); the layer is refused`,
      );
    }
    await unlink(p);
    if (base === '.wh..wh..opq') {
      await exec('setfattr', ['-h', '-n', 'trusted.overlay.opaque', '-v', 'y', parent]);
      await exec('setfattr', ['-h', '-n', 'user.overlay.opaque', '-v', 'y', parent]);
    } else if (!base.startsWith('.wh..wh.')) {
      const name = base.slice(4);
      if (!name || name === '.' || name === '..' || name.includes('/')) continue;
      const target = path.join(parent, name);
      await rm(target, { recursive: true, force: true });
      await exec('mknod', ['-m', '000', target, 'c', '0', '0']);
    }
  }
}
