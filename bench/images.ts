/**
 * Images benchmark (`npm run bench -- --only images`; also part of a full run). Side by side, in
 * one run, against a bare baseline:
 *
 *   1. first pull of a 5-layer image (~24 MiB) from a local registry (docker-registry on
 *      127.0.0.1): `acetate image pull` (resolve, skopeo copy into the shared blob dir, verify
 *      every blob, unpack each layer once with whiteouts converted, record) vs `skopeo copy` into
 *      an OCI layout + `tar -xzf` of each layer by hand (no verification of our own, no whiteouts);
 *   2. create N containers of the already-pulled image (`acetate apply --concurrency 1`) vs the bare
 *      loop (bench/baseline/create.sh: overlay mount + `runc run -d`) over the same layer dirs;
 *   3. disk: the image's layers once, and each extra container's private area.
 *
 * Results: <out>/images.md and images.json (its own files: the other sections' results stay).
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/util/package-root.js';
import { cleanupStateDir } from './lib/leaks.js';
import { buildFiveLayerImage } from './lib/five-layer-image.js';
import { imageManifest, pushLayout } from './lib/oci-image.js';
import { startRegistry } from './lib/registry.js';
import { fmtKiB, fmtMiB, fmtMs, fmtRatio, median, round } from './lib/stats.js';
import { duBytes, measure } from './lib/sys.js';
import { baselineConfigTemplate, defaultIsolation } from './lib/workload.js';

export interface ImageBenchOptions {
  out: string;
  workRoot: string;
  /** acetate's --run-dir parent and the bare loop's RUN_DIR (a tmpfs, as /run on a node). */
  runRoot: string;
  quick: boolean;
  /** Containers created per repetition (default 100). */
  n?: number;
  log(m: string): void;
}

const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const BASELINE = path.join(PACKAGE_ROOT, 'bench', 'baseline');

function imageYaml(name: string, image: string): string {
  const extra = `  imagePullPolicy: IfNotPresent
  command: ["/bin/sleep", "1000000"]
  resources: { cpu: 100m, memory: 32Mi, pids: 16 }
---
`;
  return imageManifest(name, image, extra, 0);
}

/**
 * The bare loop's config: acetate's own for a container of the image (the shared builder in
 * lib/workload.ts), with the seccomp profile acetate gives it (no masks: they are the host
 * template's) and the image's PATH, so both sides start the same process.
 */
async function baselineTemplate(dir: string, image: string): Promise<{ file: string }> {
  const extra = { ...(await defaultIsolation(dir, { masks: false })), image: { config: { Env: ['PATH=/bin:/usr/bin'] } } };
  return baselineConfigTemplate(dir, extra, { manifestYaml: imageYaml('placeholder', image).replace(/---\n$/, '') });
}

async function must(p: Promise<{ code: number | null; stderr: string; wallMs: number }>, what: string): Promise<number> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr.trim().slice(-500)}`);
  return r.wallMs;
}

export async function runImageBench(o: ImageBenchOptions): Promise<void> {
  const n = o.n ?? 100;
  const reps = o.quick ? 2 : 3;
  const work = await mkdtemp(path.join(o.workRoot, 'images-'));
  const reg = await startRegistry();
  const env = { ACETATE_REGISTRIES_CONF: reg.registriesConf };
  const results: Record<string, unknown> = { date: new Date().toISOString(), n, reps };
  try {
    const img = await buildFiveLayerImage(path.join(work, 'img'), { mib: 24 });
    const ref = `${reg.host}/bench/app:1`;
    await pushLayout(img.layout, ref);
    const blobBytes = (
      await Promise.all(img.layerDigests.map((d) => readFile(path.join(img.layout, 'blobs', 'sha256', d.slice(7))).then((b) => b.length)))
    ).reduce((a, b) => a + b, 0);
    o.log(`images: 5-layer image of ${fmtMiB(blobBytes)} compressed pushed to ${reg.host}`);

    // 1. First pull, side by side, alternating.
    const pullA: number[] = [];
    const pullB: number[] = [];
    for (let r = 0; r < reps; r++) {
      const s = path.join(work, `pull-state-${r}`);
      pullA.push(await must(measure(process.execPath, [CLI, '--state-dir', s, 'image', 'pull', ref], { env }), 'acetate image pull'));
      await rm(s, { recursive: true, force: true });
      const b = path.join(work, `pull-base-${r}`);
      await mkdir(b, { recursive: true });
      const t0 = performance.now();
      await must(
        measure('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${b}/layout:img`]),
        'skopeo copy',
      );
      const index = JSON.parse(await readFile(path.join(b, 'layout', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(await readFile(path.join(b, 'layout', 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as {
        layers: { digest: string }[];
      };
      for (const [i, l] of manifest.layers.entries()) {
        await mkdir(path.join(b, 'layers', String(i)), { recursive: true });
        await must(measure('tar', ['-xzf', path.join(b, 'layout', 'blobs', 'sha256', l.digest.slice(7)), '-C', path.join(b, 'layers', String(i))]), 'tar');
      }
      pullB.push(performance.now() - t0);
      await rm(b, { recursive: true, force: true });
    }
    results.pull = { acetateMs: pullA.map(round), baselineMs: pullB.map(round), ratio: round(median(pullA) / median(pullB), 2) };
    o.log(`images: first pull acetate ${fmtMs(median(pullA))} vs skopeo copy + tar ${fmtMs(median(pullB))}`);

    // 2. Create N containers of the pulled image, vs the bare loop over the same layer dirs.
    const stateDir = path.join(work, 'state');
    const runDir = await mkdtemp(path.join(o.runRoot, 'img-acetate-'));
    await must(measure(process.execPath, [CLI, '--state-dir', stateDir, '--run-dir', runDir, 'image', 'pull', ref], { env }), 'pull');
    const layersDir = path.join(stateDir, 'images', 'layers');
    const rec = JSON.parse((await measure(process.execPath, [CLI, '--state-dir', stateDir, '--run-dir', runDir, 'image', 'list', '-o', 'json'])).stdout) as {
      layers: { diffID: string }[];
    }[];
    const lower = rec[0]!.layers
      .map((l) => path.join(layersDir, l.diffID.slice(7)))
      .reverse()
      .join(':');
    const manifests = path.join(work, 'manifests');
    const empty = path.join(work, 'empty');
    await mkdir(manifests);
    await mkdir(empty);
    await writeFile(path.join(manifests, 'all.yaml'), Array.from({ length: n }, (_, i) => imageYaml(`i${String(i).padStart(4, '0')}`, ref)).join(''));
    const tpl = await baselineTemplate(work, ref);
    const createA: number[] = [];
    const createB: number[] = [];
    let perContainer = 0;
    for (let r = 0; r < reps; r++) {
      createA.push(
        await must(
          measure(process.execPath, [CLI, '--state-dir', stateDir, '--run-dir', runDir, 'apply', '-f', manifests, '--concurrency', '1'], { env }),
          'acetate apply',
        ),
      );
      if (r === 0) perContainer = (await duBytes(path.join(stateDir, 'containers'))) / n;
      await must(
        measure(process.execPath, [CLI, '--state-dir', stateDir, '--run-dir', runDir, 'apply', '-f', empty, '--allow-empty', '--concurrency', '8'], { env }),
        'acetate destroy',
      );
      const bw = path.join(work, `base-${r}`);
      const br = await mkdtemp(path.join(o.runRoot, 'img-base-'));
      try {
        createB.push(
          await must(measure(path.join(BASELINE, 'create.sh'), [bw, String(n), tpl.file], { env: { RUN_DIR: br, LOWER: lower } }), 'baseline create'),
        );
      } finally {
        await measure(path.join(BASELINE, 'cleanup.sh'), [bw, tpl.file], { env: { RUN_DIR: br } });
        await rm(br, { recursive: true, force: true });
      }
    }
    const layerBytes = await duBytes(layersDir);
    results.create = { acetateMs: createA.map(round), baselineMs: createB.map(round), ratio: round(median(createA) / median(createB), 2) };
    results.disk = { layersBytes: layerBytes, layerDirs: (await readdir(layersDir)).length, perContainerBytes: round(perContainer) };
    o.log(
      `images: create ${n} acetate ${fmtMs(median(createA))} vs bare loop ${fmtMs(median(createB))} (${fmtRatio(median(createA) / median(createB))}); layers ${fmtMiB(layerBytes)} once, ${fmtKiB(perContainer)} per container`,
    );
    await cleanupStateDir(stateDir, { runDir });
    await rm(runDir, { recursive: true, force: true });
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
  const pull = results.pull as { acetateMs: number[]; baselineMs: number[]; ratio: number };
  const create = results.create as { acetateMs: number[]; baselineMs: number[]; ratio: number };
  const disk = results.disk as { layersBytes: number; layerDirs: number; perContainerBytes: number };
  const md = `# Images benchmark (${results.date as string})

Medians of ${reps} repetitions, side by side in one run; a 5-layer image (busybox, whiteouts, an
opaque dir, ~24 MiB of incompressible data) from docker-registry on 127.0.0.1.

| what | acetate | baseline | ratio | target |
| --- | ---: | ---: | ---: | --- |
| first pull (\`acetate image pull\` vs \`skopeo copy\` + \`tar -xzf\` per layer) | ${fmtMs(median(pull.acetateMs))} | ${fmtMs(median(pull.baselineMs))} | ${fmtRatio(pull.ratio)} | - |
| create ${n} containers of the pulled image (\`apply --concurrency 1\` vs bare loop over the same layers) | ${fmtMs(median(create.acetateMs))} | ${fmtMs(median(create.baselineMs))} | ${fmtRatio(create.ratio)} | ≤ 1.2× ${create.ratio <= 1.2 ? 'met' : 'NOT MET'} |

Disk: the image's ${disk.layerDirs} layers take ${fmtMiB(disk.layersBytes)} once for all ${n} containers; each extra
container adds ${fmtKiB(disk.perContainerBytes)} (its private area and record).

Raw (ms): pull acetate ${pull.acetateMs.join(', ')}; baseline ${pull.baselineMs.join(', ')}; create acetate ${create.acetateMs.join(', ')}; baseline ${create.baselineMs.join(', ')}.
`;
  await mkdir(o.out, { recursive: true });
  await writeFile(path.join(o.out, 'images.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(o.out, 'images.md'), md);
  o.log(`images: results in ${path.join(o.out, 'images.md')}`);
}
