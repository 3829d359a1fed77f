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
import { chmod, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { instancePaths } from '../src/runtime/runc/paths.js';
import { DEFAULT_USERNS_POOL, RANGE_SIZE } from '../src/runtime/walls/id-pool.js';
import { IDMAP_HELPER } from '../src/runtime/walls/idmap.js';
import { PROBE_NAME, templateOf } from './lib/acetate-config.js';
import { buildFiveLayerImage } from './lib/five-layer-image.js';
import { BASELINE, CLI, check, log, runcCount, type Harness, type Instance } from './lib/harness.js';
import { assertNoLeaks } from './lib/leaks.js';
import { imageManifest, pushLayout } from './lib/oci-image.js';
import { startRegistry } from './lib/registry.js';
import { fmtMs, median, round } from './lib/stats.js';
import { duBytes, measure } from './lib/sys.js';
import { tmpDir } from './lib/workload.js';
import { writeUsernsResults, type UsernsKind, type UsernsResults } from './lib/userns-report.js';
import { DEFAULT_CONCURRENCY } from './density.js';

export interface UsernsOptions {
  n: number;
  reps: number;
  out: string;
  workRoot: string;
}

const nameOf = (i: number): string => `u${String(i).padStart(4, '0')}`;

/** A host-template container as density.ts has it (long-running shell loop, no network). */
function hostYaml(name: string): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: host
  command: ["/bin/sh", "-c", "while :; do sleep 3600; done"]
  network: none
  terminationGracePeriodSeconds: 0
  resources: { memory: 16Mi, pids: 16 }
---
`;
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
  // The containers' roots are ids of their ranges: they must walk to their private areas and
  // idmapped layers (README: user namespaces need o+x above the state and run dirs).
  const restore: (() => Promise<void>)[] = [];
  for (const d of [o.workRoot, h.runRoot]) {
    const mode = (await stat(d)).mode & 0o7777;
    await chmod(d, mode | 0o711);
    restore.push(h.cleanups.add(() => chmod(d, mode)));
  }
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
    for (const f of restore) await f();
  }
  await writeUsernsResults(r, o.out, log);
  return r;
}

/** An instance in acetate's default (a user namespace per container), with `env` added. */
async function unprivilegedInstance(h: Harness, env: Record<string, string>): Promise<Instance> {
  const inst = await h.newInstance();
  // The harness runs the other benchmarks' containers with the node's ids; these get the default.
  Object.assign(inst.env, { ACETATE_HOST_USERS: '' }, env);
  return inst;
}

async function kindBench(h: Harness, o: UsernsOptions, kind: string, yamlOf: (name: string) => string, env: Record<string, string>): Promise<UsernsKind> {
  const { n } = o;
  const inst = await unprivilegedInstance(h, env);
  try {
    const ip = instancePaths(inst.stateDir, inst.runDir);
    const tpl = await probeTemplate(h, inst, yamlOf(PROBE_NAME));
    const layers = await layersOf(inst, kind);
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
    const hv = path.join(ip.stateDir, 'host-view');
    if (kind.startsWith('host')) k.hostViewStockBytes = await duBytes(hv).catch(() => 0);
    k.ratio = round(median(k.acetateMs) / median(k.bareMs), 2);
    return k;
  } finally {
    await inst.cleanup();
  }
}

/** The config acetate writes for one container (PROBE_NAME), as the bare loop's template; the probe is then removed. */
async function probeTemplate(h: Harness, inst: Instance, yaml: string): Promise<string> {
  const ip = instancePaths(inst.stateDir, inst.runDir);
  const file = path.join(inst.dir, 'probe.yaml');
  await writeFile(file, yaml);
  const c = await h.acetate(inst, ['apply', '-f', inst.dir]);
  check(c.code === 0, `acetate apply of the probe failed: ${c.stderr.slice(-2000)}`);
  const id = `default_${PROBE_NAME}`;
  const raw = await readFile(path.join(ip.runContainersDir, id, 'bundle', 'config.json'), 'utf8');
  await rm(file);
  const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty']);
  check(d.code === 0, `acetate destroy of the probe failed: ${d.stderr.slice(-2000)}`);
  const text = templateOf(raw, { containerDir: path.join(ip.containersDir, id), id, stateDir: ip.stateDir, runDir: ip.runDir });
  // The probe had the pool's first range; the bare loop gives container I the I-th, as acetate does.
  const mapped = new RegExp(`"hostID": ${DEFAULT_USERNS_POOL.hostID},`, 'g');
  check(
    (text.match(mapped) ?? []).length === 2,
    `the probe's config does not map ids to ${DEFAULT_USERNS_POOL.hostID} (uid and gid): is the default not a user namespace?`,
  );
  check(text.includes('@RUN@/containers/@ID@/lower/0'), "the probe's root overlay is not over idmapped layers");
  return text.replace(mapped, '"hostID": @HOSTID@,');
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
  const b = await h.newBaseline({ acetate: { text: tpl, cgroupParent: '' } });
  const containers = path.join(b.env.RUN_DIR, 'containers');
  // Whatever the helper left mounted (killed before its stdin's end) goes before any dir is removed.
  const release = h.cleanups.add(() => releaseLowers(containers));
  try {
    await chmod(path.dirname(b.work), 0o711);
    await chmod(b.env.RUN_DIR, 0o711);
    const env = {
      ...b.env,
      IDMAP: IDMAP_HELPER,
      LAYERS: layers.join(':'),
      BASE: String(DEFAULT_USERNS_POOL.hostID),
      SIZE: String(RANGE_SIZE),
      CONCURRENCY: String(DEFAULT_CONCURRENCY),
    };
    const c = await measure('bash', [path.join(BASELINE, 'create-idmap.sh'), b.work, String(n), b.template], { group: h.cpuGroup, env });
    check(c.code === 0, `bare loop create failed: ${c.stderr.slice(-2000)}`);
    const root = path.join(b.env.RUN_DIR, 'runc');
    check((await runcCount(root)) === n, 'bare loop: not all running');
    const st = JSON.parse((await measure('runc', ['--root', root, 'list', '--format', 'json'])).stdout) as { pid: number }[];
    checkRanges(await Promise.all(st.map((s) => uidMapOf(s.pid))), 'bare loop', n);
    if (first) {
      const du = await Promise.all([path.join(b.work, 'c'), path.join(b.env.RUN_DIR, 'bundles'), root, containers].map(duBytes));
      first.bareDiskPerContainerBytes = round(du.reduce((x, y) => x + y, 0) / n);
    }
    const d = await measure('bash', [path.join(BASELINE, 'destroy.sh'), b.work, b.template], { env: b.env });
    check(d.code === 0, `bare loop destroy failed: ${d.stderr.slice(-2000)}`);
    return c;
  } finally {
    await release();
    await b.cleanup();
  }
}

/** Detaches anything still mounted at <containers>/<id>/lower/<k> (acetate-idmap --release), then removes the dirs (rmdir only: never recursive over a layer). */
async function releaseLowers(containers: string): Promise<void> {
  const ids = await readdir(containers).catch(() => [] as string[]);
  for (const id of ids) {
    const lower = path.join(containers, id, 'lower');
    const targets = (await readdir(lower).catch(() => [] as string[])).map((t) => path.join(lower, t));
    if (targets.length) await measure(IDMAP_HELPER, ['--release', ...targets]);
    for (const t of targets) await rmdir(t).catch(() => undefined);
    await rmdir(lower).catch(() => undefined);
    await rmdir(path.join(containers, id)).catch(() => undefined);
  }
  await rmdir(containers).catch(() => undefined);
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
