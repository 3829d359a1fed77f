/**
 * The bare loop with acetate's default user namespaces (issue 23, used by bench/userns.ts and
 * bench/density.ts): an instance in the default, the probe container's config as the loop's
 * template (its id range a placeholder), and the loop itself (bench/baseline/create-idmap.sh: the
 * same range per container, the layers mounted idmapped by acetate's own helper around
 * `runc run -d`), with what it leaves mounted released and checked gone.
 */
import { chmod, mkdtemp, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { DEFAULT_USERNS_POOL, RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import { IDMAP_HELPER } from '../../src/runtime/walls/idmap.js';
import { layersDirOf } from '../../src/runtime/walls/host-layer.js';
import { mountsUnder } from '../../src/util/mounts.js';
import { PROBE_NAME, templateOf } from './acetate-config.js';
import { BASELINE, check, type Baseline, type Harness, type Instance } from './harness.js';
import { measure, type Measured } from './sys.js';

/** An instance in acetate's default (a user namespace per container), with `env` added. */
export async function unprivilegedInstance(h: Harness, env: Record<string, string> = {}): Promise<Instance> {
  const inst = await h.newInstance();
  // The harness runs the other benchmarks' containers with the node's ids; these get the default.
  Object.assign(inst.env, { ACETATE_HOST_USERS: '' }, env);
  return inst;
}

/**
 * The containers' roots are ids of their ranges: they must walk to their private areas and
 * idmapped layers (README: user namespaces need o+x above the state and run dirs). Restored at the
 * end (the returned function, also registered with the run's cleanups).
 */
export async function openDirsForRanges(h: Harness, dirs: string[]): Promise<() => Promise<void>> {
  const restore: (() => Promise<void>)[] = [];
  for (const d of dirs) {
    const mode = (await stat(d)).mode & 0o7777;
    await chmod(d, mode | 0o711);
    restore.push(h.cleanups.add(() => chmod(d, mode)));
  }
  return async () => {
    for (const f of restore) await f();
  };
}

export interface ProbedTemplate {
  /** The config, @HOSTID@ its range. */
  text: string;
  /**
   * The layers acetate mounts above the template's (a host-template container's host view's
   * layer, src/runtime/walls/host-layer.ts): a copy on the run root's tmpfs, made once, mounted by
   * the bare loop as acetate mounts the original (not on `/`'s filesystem: overlayfs refuses a
   * lower layer inside another).
   */
  above: string[];
}

/** The config acetate writes for one container (PROBE_NAME), as the bare loop's template (@HOSTID@ its range); the probe is then removed. */
export async function probeTemplate(h: Harness, inst: Instance, yaml: string): Promise<ProbedTemplate> {
  const ip = instancePaths(inst.stateDir, inst.runDir);
  const file = path.join(inst.dir, 'probe.yaml');
  await writeFile(file, yaml);
  const c = await h.acetate(inst, ['apply', '-f', inst.dir]);
  check(c.code === 0, `acetate apply of the probe failed: ${c.stderr.slice(-2000)}`);
  const id = `default_${PROBE_NAME}`;
  const raw = await readFile(path.join(ip.runContainersDir, id, 'bundle', 'config.json'), 'utf8');
  const above: string[] = [];
  const target = await readFile(path.join(ip.containersDir, id, 'host-view-target.json'), 'utf8').catch(() => undefined);
  const layer = target ? (JSON.parse(target) as { layer?: string }).layer : undefined;
  if (layer) {
    const copy = await mkdtemp(path.join(h.runRoot, 'acetate-bench-layer-'));
    h.cleanups.add(() => rm(copy, { recursive: true, force: true }));
    const cp = await measure('cp', ['-a', '--', `${path.join(layersDirOf(ip.runDir, ip.stateDir), layer)}/.`, copy]);
    check(cp.code === 0, `copying the host view's layer failed: ${cp.stderr}`);
    await chmod(copy, 0o755);
    above.push(copy);
  }
  await rm(file);
  const d = await h.acetate(inst, ['apply', '-f', inst.dir, '--allow-empty']);
  check(d.code === 0, `acetate destroy of the probe failed: ${d.stderr.slice(-2000)}`);
  const text = templateOf(raw, { containerDir: path.join(ip.containersDir, id), id, stateDir: ip.stateDir, runDir: ip.runDir });
  // The probe had the first range free on the node (other instances' records may hold the pool's
  // first ones); the bare loop gives container I the I-th from the pool's start, as acetate does.
  const first = /"hostID": (\d+),/.exec(text)?.[1];
  check(
    first !== undefined && Number(first) >= DEFAULT_USERNS_POOL.hostID,
    `the probe's config maps no ids into the pool at ${DEFAULT_USERNS_POOL.hostID}: is the default not a user namespace?`,
  );
  const mapped = new RegExp(`"hostID": ${first},`, 'g');
  check((text.match(mapped) ?? []).length === 2, `the probe's config does not map uid and gid to one range at ${first}`);
  check(text.includes('@RUN@/containers/@ID@/lower/0'), "the probe's root overlay is not over idmapped layers");
  return { text: text.replace(mapped, '"hostID": @HOSTID@,'), above };
}

export interface IdmapLoop {
  b: Baseline;
  /** create-idmap.sh's run. */
  created: Measured;
  /** destroy.sh, then the layer mounts released; throws if anything is left mounted. */
  destroy(): Promise<Measured>;
  /** Releases whatever is left and removes the loop's dirs (also on failure). */
  cleanup(): Promise<void>;
}

/**
 * The bare loop of N containers over `layers` (top first; ['/'] for the host template), K at once,
 * from `tpl` (probeTemplate's). The caller measures what it wants while they run, then destroy().
 */
export async function startIdmapLoop(h: Harness, tpl: string, layers: string[], n: number, k: number): Promise<IdmapLoop> {
  const b = await h.newBaseline({ acetate: { text: tpl, cgroupParent: '' } });
  const containers = path.join(b.env.RUN_DIR, 'containers');
  // Whatever the helper left mounted (killed before its stdin's end) goes before any dir is removed.
  const release = h.cleanups.add(() => releaseLowers(containers));
  const cleanup = async () => {
    await release();
    await b.cleanup();
  };
  try {
    await chmod(path.dirname(b.work), 0o711);
    await chmod(b.env.RUN_DIR, 0o711);
    const env = {
      ...b.env,
      IDMAP: IDMAP_HELPER,
      LAYERS: layers.join(':'),
      BASE: String(DEFAULT_USERNS_POOL.hostID),
      SIZE: String(RANGE_SIZE),
      CONCURRENCY: String(k),
    };
    const created = await measure('bash', [path.join(BASELINE, 'create-idmap.sh'), b.work, String(n), b.template], { group: h.cpuGroup, env });
    check(created.code === 0, `bare loop create failed: ${created.stderr.slice(-2000)}`);
    const destroy = async (): Promise<Measured> => {
      const d = await measure('bash', [path.join(BASELINE, 'destroy.sh'), b.work, b.template], { group: h.cpuGroup, env: b.env });
      check(d.code === 0, `bare loop destroy failed: ${d.stderr.slice(-2000)}`);
      await releaseLowers(containers);
      const left = [...(await mountsUnder(b.env.RUN_DIR)), ...(await mountsUnder(path.dirname(b.work)))];
      check(left.length === 0, `bare loop: still mounted after teardown: ${left.slice(0, 5).join(', ')}`);
      return d;
    };
    return { b, created, destroy, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Detaches anything still mounted at <containers>/<id>/lower/<k> (acetate-idmap --release), then removes the dirs (rmdir only: never recursive over a layer). */
export async function releaseLowers(containers: string): Promise<void> {
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
