/**
 * Unprivileged create (issue 23; `npm run bench -- --only userns`, and part of a normal run):
 * N containers in acetate's default, a user namespace with its own 65536-id range each and the
 * rootfs layers mounted idmapped (native/acetate-idmap.c), created from the host template and
 * from an image (5 layers, from docker-registry on 127.0.0.1), each against the bare loop with
 * the same mappings (bench/baseline/create-idmap.sh: the config.json acetate wrote, the same id
 * range per container, the layers mounted idmapped by the same helper, `runc run -d`), at
 * acetate's default concurrency on both sides, repetitions alternating. Target: ≤ 1.1×.
 *
 * Also, while the N run: the disk each container adds (du of its container dir with the private
 * area, its run dir, its runc state) and the image's layers, one copy for all and still owned by
 * node root (nothing chowned in the layer store); from inside, each container's uid_map is its own
 * non-zero range, disjoint from the others'.
 *
 * Results: <out>/userns.{md,json}, and the same table in results.md (lib/userns-report.ts).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { RANGE_SIZE } from '../src/runtime/walls/id-pool.js';
import { PROBE_NAME } from './lib/acetate-config.js';
import { openDirsForRanges, probeTemplate, startIdmapLoop, unprivilegedInstance } from './lib/idmap-baseline.js';
import { buildFiveLayerImage } from './lib/five-layer-image.js';
import { CLI, check, log, runcCount, type Harness, type Instance } from './lib/harness.js';
import { assertNoLeaks } from './lib/leaks.js';
import { imageManifest, pushLayout } from './lib/oci-image.js';
import { startRegistry } from './lib/registry.js';
import { fmtMs, median, round } from './lib/stats.js';
import { duBytes, measure } from './lib/sys.js';
import { tmpDir } from './lib/workload.js';
import { writeUsernsResults, type UsernsKind, type UsernsResults } from './lib/userns-report.js';
import { DEFAULT_CONCURRENCY, densityYaml } from './density.js';

export interface UsernsOptions {
  n: number;
  reps: number;
  out: string;
  workRoot: string;
}

const nameOf = (i: number): string => `u${String(i).padStart(4, '0')}`;

/** density.ts's container (long-running shell loop, no network), as one document of a file of N. */
function hostYaml(name: string): string {
  return `${densityYaml(name)}---\n`;
}

function imageYaml(name: string, ref: string): string {
  return imageManifest(
    name,
    ref,
    `  imagePullPolicy: IfNotPresent
  command: ["/bin/sleep", "1000000"]
  network: none
  resources: { memory: 16Mi, pids: 16 }
---
`,
    0,
  );
}

export async function usernsBench(h: Harness, o: UsernsOptions): Promise<UsernsResults> {
  const r: UsernsResults = {
    startedAt: new Date().toISOString(),
    n: o.n,
    reps: o.reps,
    concurrency: DEFAULT_CONCURRENCY,
    loadAvgStart: os.loadavg().map((x) => round(x, 2)),
    kinds: [],
  };
  const restore = await openDirsForRanges(h, [o.workRoot, h.runRoot]);
  const reg = await startRegistry();
  const stopReg = h.cleanups.add(() => reg.stop());
  const imgDir = await tmpDir('acetate-bench-uimg-');
  const rmImg = h.cleanups.add(() => rm(imgDir, { recursive: true, force: true }));
  try {
    const img = await buildFiveLayerImage(path.join(imgDir, 'layout'), { mib: 8 });
    const ref = `${reg.host}/bench/userns:1`;
    await pushLayout(img.layout, ref);
    await rmImg();
    r.kinds.push(await kindBench(h, o, 'host template', hostYaml, {}));
    r.kinds.push(await kindBench(h, o, 'image (5 layers)', (name) => imageYaml(name, ref), { ACETATE_REGISTRIES_CONF: reg.registriesConf }));
  } finally {
    r.loadAvgEnd = os.loadavg().map((x) => round(x, 2));
    await stopReg();
    await restore();
  }
  await writeUsernsResults(r, o.out, log);
  return r;
}

async function kindBench(h: Harness, o: UsernsOptions, kind: string, yamlOf: (name: string) => string, env: Record<string, string>): Promise<UsernsKind> {
  const { n } = o;
  const inst = await unprivilegedInstance(h, env);
  try {
    const ip = instancePaths(inst.stateDir, inst.runDir);
    const probed = await probeTemplate(h, inst, yamlOf(PROBE_NAME));
    const tpl = probed.text;
    const layers = [...probed.above, ...(await layersOf(inst, kind))];
    const k: UsernsKind = { kind, layers: layers.length, bareMs: [], acetateMs: [], bareCpuMs: [], acetateCpuMs: [] };
    for (let rep = 1; rep <= o.reps; rep++) {
      const b = await bareRun(h, tpl, layers, n, rep === 1 ? k : undefined);
      k.bareMs.push(round(b.wallMs));
      k.bareCpuMs.push(round(b.cpuMs));
      const a = await acetateRun(h, inst, yamlOf, n, rep === 1 ? k : undefined);
      k.acetateMs.push(round(a.wallMs));
      k.acetateCpuMs.push(round(a.cpuMs));
      log(`userns ${kind} N=${n} rep ${rep}: bare loop ${fmtMs(b.wallMs)}, acetate ${fmtMs(a.wallMs)}`);
    }
    if (kind.startsWith('image')) {
      const layersDir = path.join(ip.stateDir, 'images', 'layers');
      k.imageLayersBytes = await duBytes(layersDir);
      // Nothing chowned in the layer store: every entry still has the owner its tar gave (root).
      const f = await measure('find', [layersDir, '!', '-uid', '0', '-o', '!', '-gid', '0']);
      check(f.code === 0, `find failed: ${f.stderr}`);
      k.layerEntriesNotRoot = f.stdout.split('\n').filter(Boolean).length;
    }
    if (probed.above.length) k.hostLayerBytes = await duBytes(probed.above[0]!).catch(() => 0);
    k.ratio = round(median(k.acetateMs) / median(k.bareMs), 2);
    return k;
  } finally {
    await inst.cleanup();
  }
}

/** The layer dirs acetate mounts idmapped, in its order (the overlay's lowerdir: top first). */
async function layersOf(inst: Instance, kind: string): Promise<string[]> {
  if (kind.startsWith('host')) return ['/'];
  const ip = instancePaths(inst.stateDir, inst.runDir);
  const l = await measure(process.execPath, [CLI, '--state-dir', inst.stateDir, 'image', 'list', '-o', 'json'], { env: inst.env });
  check(l.code === 0, `acetate image list failed: ${l.stderr}`);
  const rec = JSON.parse(l.stdout) as { layers: { diffID: string }[] }[];
  check(rec.length === 1, `expected one image, found ${rec.length}`);
  return rec[0]!.layers.map((x) => path.join(ip.stateDir, 'images', 'layers', x.diffID.slice(7))).reverse();
}

/** The node range a running container's init maps its root to (first line of /proc/<pid>/uid_map). */
async function uidMapOf(pid: number): Promise<{ inside: number; host: number; size: number }> {
  const [inside, host, size] = (await readFile(`/proc/${pid}/uid_map`, 'utf8')).trim().split(/\s+/).map(Number);
  return { inside: inside!, host: host!, size: size! };
}

/** Every container's root is a non-zero node range of its own (checked from /proc, as `cat /proc/self/uid_map` inside shows). */
function checkRanges(maps: { host: number; size: number; inside: number }[], who: string, n: number): void {
  check(maps.length === n, `${who}: ${maps.length}/${n} containers found`);
  check(
    maps.every((m) => m.inside === 0 && m.host > 0 && m.size === RANGE_SIZE),
    `${who}: a container's root is not a range of ${RANGE_SIZE} node ids: ${JSON.stringify(maps.find((m) => m.host === 0))}`,
  );
  const starts = maps.map((m) => m.host).sort((a, b) => a - b);
  check(
    starts.every((s, i) => i === 0 || s >= starts[i - 1]! + RANGE_SIZE),
    `${who}: two containers' id ranges overlap`,
  );
}

async function bareRun(h: Harness, tpl: string, layers: string[], n: number, first?: UsernsKind) {
  const loop = await startIdmapLoop(h, tpl, layers, n, DEFAULT_CONCURRENCY);
  try {
    const root = path.join(loop.b.env.RUN_DIR, 'runc');
    check((await runcCount(root)) === n, 'bare loop: not all running');
    const st = JSON.parse((await measure('runc', ['--root', root, 'list', '--format', 'json'])).stdout) as { pid: number }[];
    checkRanges(await Promise.all(st.map((s) => uidMapOf(s.pid))), 'bare loop', n);
    if (first) {
      const containers = path.join(loop.b.env.RUN_DIR, 'containers');
      const du = await Promise.all([path.join(loop.b.work, 'c'), path.join(loop.b.env.RUN_DIR, 'bundles'), root, containers].map(duBytes));
      first.bareDiskPerContainerBytes = round(du.reduce((x, y) => x + y, 0) / n);
    }
    await loop.destroy();
    return loop.created;
  } finally {
    await loop.cleanup();
  }
}

async function acetateRun(h: Harness, inst: Instance, yamlOf: (name: string) => string, n: number, first?: UsernsKind) {
  const file = path.join(inst.dir, 'containers.yaml');
  await writeFile(file, Array.from({ length: n }, (_, i) => yamlOf(nameOf(i))).join(''));
  const c = await h.acetate(inst, ['apply', '-f', inst.dir, '--concurrency', String(DEFAULT_CONCURRENCY)]);
  check(c.code === 0, `acetate apply failed: ${c.stderr.slice(-2000)}`);
  const got = await h.listJson(inst);
  check(got.length === n && got.every((x) => x.phase === 'Running' && x.pid), `acetate: ${got.filter((x) => x.phase === 'Running').length}/${n} running`);
  checkRanges(await Promise.all(got.map((x) => uidMapOf(x.pid!))), 'acetate', n);
  if (first) {
    const ip = instancePaths(inst.stateDir, inst.runDir);
    const du = await Promise.all([ip.containersDir, ip.runContainersDir, ip.runcRoot].map(duBytes));
    first.acetateDiskPerContainerBytes = round(du.reduce((x, y) => x + y, 0) / n);
    first.acetateDiskParts = { containerDirs: round(du[0]! / n), runDirs: round(du[1]! / n), runcState: round(du[2]! / n) };
  }
  await rm(file);
  const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty', '--concurrency', String(DEFAULT_CONCURRENCY)]);
  check(d.code === 0, `acetate destroy failed: ${d.stderr.slice(-2000)}`);
  await assertNoLeaks(inst.stateDir, { runDir: inst.runDir, waitMs: 30_000 });
  return c;
}
