/**
 * Pull benchmark (`npm run bench -- --only pull`; also part of a full run): what acetate's checks
 * add to a first pull, side by side in one run, each repetition running every side in turn (the
 * order rotated), on the same 5-layer image from docker-registry on 127.0.0.1:
 *
 *   bare      `skopeo copy docker://… oci:` + `tar -xzf` of each layer: no check of its own;
 *   bare+sha  the same, plus what a careful script adds to check the same things with standard
 *             tools: `sha256sum` of every blob, `gzip -dc | sha256sum` of every layer (its diff_id);
 *   store     acetate's ImageStore.pull in this process (resolve and hash the manifest, layer count,
 *             skopeo copy into the shared blob dir, sha256 of every blob, unpack with the diff_id
 *             hashed on the way and the stream counted against ACETATE_MAX_LAYER_SIZE, whiteouts
 *             converted, record): the library without node's start-up;
 *   cli       `acetate image pull`: the same with node's start-up and the node lock.
 *
 * And, on the pulled blobs, acetate's verification alone (verifyBlob of every blob plus the
 * diff_id's sha256 of each decompressed layer, in node), so its share of the pull can be read.
 * Size: the image's MiB, the first of --sizes (default 24; --quick 8). Results: <out>/pull.md, pull.json.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { ImageStore } from '../src/images/store.js';
import { verifyBlob } from '../src/images/unpack.js';
import { buildFiveLayerImage } from './lib/five-layer-image.js';
import { pushLayout } from './lib/oci-image.js';
import { startRegistry } from './lib/registry.js';
import { fmtMiB, fmtMs, fmtRatio, median, round } from './lib/stats.js';
import { measure } from './lib/sys.js';

export interface PullBenchOptions {
  out: string;
  workRoot: string;
  quick: boolean;
  /** The image's size in MiB. */
  mib?: number;
  log(m: string): void;
}

const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const SIDES = ['bare', 'bare+sha', 'store', 'cli'] as const;
type Side = (typeof SIDES)[number];

async function must(p: Promise<{ code: number | null; stderr: string; stdout: string }>, what: string): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr.trim().slice(-500)}`);
  return r.stdout;
}

/** skopeo copy into an OCI layout + tar -xzf per layer; with `check`, sha256sum of each blob and of each decompressed layer too. */
async function bare(ref: string, dir: string, check: boolean): Promise<void> {
  await must(measure('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}/layout:img`]), 'skopeo copy');
  const blob = (d: string) => path.join(dir, 'layout', 'blobs', 'sha256', d.slice(7));
  const index = JSON.parse(await readFile(path.join(dir, 'layout', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]!.digest;
  const manifest = JSON.parse(await readFile(blob(manifestDigest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  if (check) {
    const all = [manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    const sums = await must(measure('sha256sum', all.map(blob)), 'sha256sum');
    for (const d of all) if (!sums.includes(d.slice(7))) throw new Error(`bare+sha: ${d} does not match`);
  }
  for (const [i, l] of manifest.layers.entries()) {
    const to = path.join(dir, 'layers', String(i));
    await mkdir(to, { recursive: true });
    await must(measure('tar', ['-xzf', blob(l.digest), '-C', to]), 'tar');
    if (check) {
      const out = await must(measure('sh', ['-c', 'gzip -dc "$1" | sha256sum', 'sh', blob(l.digest)]), 'gzip | sha256sum');
      if (!out.startsWith(config.rootfs.diff_ids[i]!.slice(7))) throw new Error(`bare+sha: layer ${i} diff_id does not match`);
    }
  }
}

/** acetate's verification alone, as the store does it: every blob's sha256, and each layer's diff_id over its decompressed stream. */
async function verificationAlone(blobsDir: string, layers: { digest: string }[], configDigest: string, manifestDigest: string): Promise<number> {
  const t0 = performance.now();
  const blob = (d: string) => path.join(blobsDir, 'sha256', d.slice(7));
  await verifyBlob(blob(manifestDigest), manifestDigest, 'manifest');
  await verifyBlob(blob(configDigest), configDigest, 'config');
  for (const l of layers) {
    await verifyBlob(blob(l.digest), l.digest, 'layer');
    await pipeline(createReadStream(blob(l.digest)), createGunzip(), createHash('sha256'));
  }
  return performance.now() - t0;
}

export async function pullBench(o: PullBenchOptions): Promise<void> {
  const mib = o.mib ?? (o.quick ? 8 : 24);
  const reps = o.quick ? 3 : 5;
  const work = await mkdtemp(path.join(o.workRoot, 'pull-'));
  const reg = await startRegistry();
  const times: Record<Side, number[]> = { bare: [], 'bare+sha': [], store: [], cli: [] };
  const verifyMs: number[] = [];
  let blobBytes = 0;
  try {
    const img = await buildFiveLayerImage(path.join(work, 'img'), { mib });
    const ref = `${reg.host}/bench/pull:1`;
    await pushLayout(img.layout, ref);
    for (const d of img.layerDigests) blobBytes += (await readFile(path.join(img.layout, 'blobs', 'sha256', d.slice(7)))).length;
    o.log(`pull: 5-layer image of ${fmtMiB(blobBytes)} compressed pushed to ${reg.host}; ${reps} repetitions of ${SIDES.join(', ')}`);
    const env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
    for (let r = 0; r < reps; r++) {
      for (let k = 0; k < SIDES.length; k++) {
        const side = SIDES[(r + k) % SIDES.length]!;
        const dir = path.join(work, `${side}-${r}`);
        await mkdir(dir, { recursive: true });
        const t0 = performance.now();
        if (side === 'bare' || side === 'bare+sha') await bare(ref, dir, side === 'bare+sha');
        else if (side === 'store') {
          const store = new ImageStore({ stateDir: dir, registriesConf: reg.registriesConf });
          const rec = await store.pull(ref);
          times.store.push(performance.now() - t0);
          verifyMs.push(await verificationAlone(store.blobsDir, rec.layers, rec.configDigest, rec.manifestDigest));
        } else await must(measure(process.execPath, [CLI, '--state-dir', dir, 'image', 'pull', ref], { env }), 'acetate image pull');
        if (side !== 'store') times[side].push(performance.now() - t0);
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
  const base = median(times.bare);
  const rows = SIDES.map((s) => ({
    side: s,
    medianMs: round(median(times[s])),
    ratio: round(median(times[s]) / base, 2),
    rawMs: times[s].map((x) => Math.round(x)),
  }));
  const results = { date: new Date().toISOString(), mib, blobBytes, reps, rows, verifyAloneMs: verifyMs.map((x) => Math.round(x)) };
  const what: Record<Side, string> = {
    bare: '`skopeo copy` + `tar -xzf` per layer (no checks)',
    'bare+sha': 'the same + `sha256sum` of every blob + `gzip -dc \\| sha256sum` per layer (diff_id)',
    store: "acetate's `ImageStore.pull`, in process (all checks, whiteouts, record)",
    cli: '`acetate image pull` (the same + node start-up, node lock)',
  };
  const md = `# Pull benchmark (${results.date})

Medians of ${reps} repetitions, every side in each repetition (order rotated), side by side in one
run; a 5-layer image (${fmtMiB(blobBytes)} of layer blobs, ~${mib} MiB of data) from docker-registry
on 127.0.0.1.

| what | median | vs bare |
| --- | ---: | ---: |
${rows.map((r) => `| ${what[r.side]} | ${fmtMs(r.medianMs)} | ${fmtRatio(r.ratio)} |`).join('\n')}
| acetate's verification alone (sha256 of every blob and every layer's diff_id, in node, on the pulled blobs) | ${fmtMs(median(verifyMs))} | - |

Raw (ms): ${rows.map((r) => `${r.side} ${r.rawMs.join(', ')}`).join('; ')}; verification alone ${results.verifyAloneMs.join(', ')}.
`;
  await mkdir(o.out, { recursive: true });
  await writeFile(path.join(o.out, 'pull.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(o.out, 'pull.md'), md);
  for (const r of rows) o.log(`pull: ${r.side} ${fmtMs(r.medianMs)} (${fmtRatio(r.ratio)} bare)`);
  o.log(`pull: verification alone ${fmtMs(median(verifyMs))}; results in ${path.join(o.out, 'pull.md')}`);
}
