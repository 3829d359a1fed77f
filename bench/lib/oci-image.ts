/**
 * OCI images built by hand for tests and the images benchmark (tar + JSON + sha256, exactly what a builder writes), from
 * busybox-static, and pushed to a test registry with skopeo. No network beyond 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { exec } from '../../src/util/exec.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

export interface LayerSpec {
  /** Populate the layer's directory (relative paths; `.wh.NAME` files are OCI whiteouts). */
  build(dir: string): Promise<void>;
  /** Raw tar bytes instead (crafted layers). */
  tar?: Buffer;
}

export interface ImageConfigSpec {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
}

export interface BuiltImage {
  layout: string;
  manifestDigest: string;
  layerDigests: string[];
  diffIDs: string[];
}

function sha(buf: Buffer | string): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

async function writeBlob(layout: string, data: Buffer | string): Promise<string> {
  const d = sha(data);
  await writeFile(path.join(layout, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/** A reproducible tar of a directory (numeric root owners, sorted names). */
export async function tarOf(dir: string): Promise<Buffer> {
  const out = `${dir}.tar`;
  await exec('tar', ['-c', '-f', out, '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=2026-01-01', '-C', dir, '.']);
  const buf = await readFile(out);
  await rm(out, { force: true });
  return buf;
}

/** Builds an OCI image layout (gzip layers) in `layout`. */
export async function buildImage(layout: string, layers: LayerSpec[], config: ImageConfigSpec): Promise<BuiltImage> {
  await mkdir(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  const work = await mkdtemp(path.join(path.dirname(layout), '.layers-'));
  const descs: { mediaType: string; digest: string; size: number }[] = [];
  const diffIDs: string[] = [];
  try {
    for (const [i, l] of layers.entries()) {
      let tar = l.tar;
      if (!tar) {
        const dir = path.join(work, `l${i}`);
        await mkdir(dir, { recursive: true });
        await l.build(dir);
        tar = await tarOf(dir);
      }
      diffIDs.push(sha(tar));
      const gz = gzipSync(tar);
      descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await writeBlob(layout, gz), size: gz.length });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: diffIDs }, history: [] });
  const cfgDigest = await writeBlob(layout, cfg);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: Buffer.byteLength(cfg) },
    layers: descs,
  });
  const manifestDigest = await writeBlob(layout, manifest);
  await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: Buffer.byteLength(manifest) }],
    }),
  );
  return { layout, manifestDigest, layerDigests: descs.map((d) => d.digest), diffIDs };
}

/**
 * The test image: busybox with a file that a later layer deletes (etc/doomed), a directory a later
 * layer makes opaque (opq/: a, b below; only c above), and a last layer carrying `version`.
 */
export function testImageLayers(version: string, extra: LayerSpec[] = []): LayerSpec[] {
  return [
    {
      async build(d) {
        await makeBusyboxRootfs(d);
        await writeFile(path.join(d, 'etc', 'doomed'), 'delete me\n');
        await mkdir(path.join(d, 'opq'));
        await writeFile(path.join(d, 'opq', 'a'), 'a\n');
        await writeFile(path.join(d, 'opq', 'b'), 'b\n');
      },
    },
    {
      async build(d) {
        await mkdir(path.join(d, 'etc'));
        await writeFile(path.join(d, 'etc', '.wh.doomed'), '');
        await mkdir(path.join(d, 'opq'));
        await writeFile(path.join(d, 'opq', '.wh..wh..opq'), '');
        await writeFile(path.join(d, 'opq', 'c'), 'c\n');
        await mkdir(path.join(d, 'app'));
        await writeFile(path.join(d, 'app', 'hello.txt'), 'hello from the image\n');
      },
    },
    ...extra,
    {
      async build(d) {
        await writeFile(path.join(d, 'version'), `${version}\n`);
      },
    },
  ];
}

export const TEST_IMAGE_CONFIG: ImageConfigSpec = {
  Entrypoint: ['/bin/sh', '-c'],
  Cmd: ['echo "$GREETING from $(pwd)" > /tmp/out; exec sleep 1000'],
  Env: ['PATH=/bin:/usr/bin', 'GREETING=image-default', 'FROM_IMAGE=yes'],
  WorkingDir: '/app',
};

/** Pushes an OCI layout to `docker://host/repo:tag` over plain HTTP; returns the registry's digest. */
export async function pushLayout(layout: string, dest: string, opts: { creds?: string } = {}): Promise<string> {
  const digestFile = `${layout}.digest`;
  await exec('skopeo', [
    '--insecure-policy',
    'copy',
    '--quiet',
    '--dest-tls-verify=false',
    '--digestfile',
    digestFile,
    ...(opts.creds ? ['--dest-creds', opts.creds] : []),
    `oci:${layout}`,
    `docker://${dest}`,
  ]);
  const d = (await readFile(digestFile, 'utf8')).trim();
  await rm(digestFile, { force: true });
  return d;
}

/** A Container manifest of an image (`extra`: lines appended under spec, indented by two spaces). */
export function imageManifest(name: string, image: string, extra = '', grace = 1): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  image: ${image}
  terminationGracePeriodSeconds: ${grace}
${extra}`;
}
