/**
 * What an acetate instance (identified by its state dir, and its run dir when that is not the
 * default <stateDir>/run) may leave on the node: mounts under the dirs, cgroup dirs under its
 * cgroup parent, runc state in its runc root, conmon/container processes, files. Tests call
 * assertNoLeaks after removing everything.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Runtime } from '../../src/runtime/runtime.js';
import { findBinary } from '../../src/util/find-binary.js';
import { cgroupHierarchies, cgroupProcs, removeCgroupDir } from '../../src/runtime/runc/cgroups.js';
import { mountsUnder, unmountAll } from '../../src/util/mounts.js';
import { instancePaths, keyOfId, type InstancePaths } from '../../src/runtime/runc/paths.js';
import { instanceEntryFile } from '../../src/runtime/walls/instances.js';
import { dropClaims, listClaims, NODE_ID_CLAIMS } from '../../src/runtime/walls/id-claims.js';
import { withIdRecordsLock } from '../../src/runtime/walls/id-lock.js';
import { RANGE_SIZE } from '../../src/runtime/walls/id-pool.js';
import type { IdRecordOwner } from '../../src/runtime/walls/id-records.js';
import { readProcStat } from '../../src/util/processes.js';
import { RuncRuntime } from '../../src/runtime/runc/runc-runtime.js';
import { TemplateStore } from '../../src/runtime/runc/templates.js';
import { exec } from '../../src/util/exec.js';
import { exists } from '../../src/util/exists.js';
import { cleanupNetwork, networkProblems, snapshotNetworkLeaks, type TestNetwork } from './network-leaks.js';

export interface LeakedProcess {
  pid: number;
  cmdline: string;
  why: 'cmdline' | 'cgroup';
}

export interface LeakSnapshot {
  stateDir: string;
  /** Mount points at or under the state dir. */
  mounts: string[];
  /** Cgroup dirs (one per hierarchy) of the instance's parent `/acetate-<hash8>`. */
  cgroups: string[];
  /** Container ids left in the instance's runc root. */
  runcStates: string[];
  /** Live processes whose command line mentions the state dir or that sit in the instance's cgroups. */
  processes: LeakedProcess[];
  /** Container dirs left under <stateDir>/containers. */
  containerDirs: string[];
  /** Containers' runtime dirs left under <runDir>/containers. */
  runContainerDirs: string[];
  /** Whether the state dir itself still exists. */
  dirExists: boolean;
  /** The node's claims on id ranges naming this state dir ("hostID (container)"). */
  idClaims: string[];
  /** What pulls left in the image store: OCI layouts in images/tmp, half-unpacked layers. */
  imageTemps: string[];
  /** Loop devices whose backing file is under the state dir (disk images of resources.disk). */
  loops: string[];
}

/** Loop devices backed by a file under `dir` ("/dev/loop3 (/tmp/…/disk.img)"). */
export async function loopsUnder(dir: string): Promise<{ name: string; backFile: string }[]> {
  const base = `${path.resolve(dir)}/`;
  const { stdout } = await exec('losetup', ['-l', '-J', '-O', 'NAME,BACK-FILE']);
  if (!stdout.trim()) return [];
  const devs = (JSON.parse(stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] }).loopdevices ?? [];
  return devs.map((d) => ({ name: d.name, backFile: d['back-file'] ?? '' })).filter((d) => d.backFile.startsWith(base));
}

async function listDir(p: string): Promise<string[]> {
  try {
    return (await readdir(p)).sort();
  } catch {
    return [];
  }
}

async function leakedProcesses(stateDir: string, cgroupParent: string): Promise<LeakedProcess[]> {
  const out: LeakedProcess[] = [];
  const pids = (await listDir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
  for (const pid of pids) {
    if (pid === process.pid) continue;
    const st = await readProcStat(pid);
    if (!st || st.state === 'Z' || st.state === 'X') continue;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();
    if (cmdline.includes(stateDir)) {
      out.push({ pid, cmdline, why: 'cmdline' });
      continue;
    }
    const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    if (cg.split('\n').some((l) => l.includes(`:${cgroupParent}/`) || l.endsWith(`:${cgroupParent}`))) {
      out.push({ pid, cmdline, why: 'cgroup' });
    }
  }
  return out;
}

/** The instance's dirs: the state dir, and the run dir unless it is inside it. */
function instanceDirs(ip: InstancePaths): string[] {
  return ip.runDir.startsWith(`${ip.stateDir}/`) ? [ip.stateDir] : [ip.stateDir, ip.runDir];
}

export async function snapshotLeaks(stateDir: string, opts: { runDir?: string } = {}): Promise<LeakSnapshot> {
  const ip = instancePaths(stateDir, opts.runDir);
  const rel = ip.cgroupParent.replace(/^\/+/, '');
  const cgroups: string[] = [];
  for (const h of await cgroupHierarchies()) {
    const p = path.join(h, rel);
    if (await exists(p)) cgroups.push(p);
  }
  const runcStates: string[] = [];
  for (const id of await listDir(ip.runcRoot)) {
    if (await exists(path.join(ip.runcRoot, id, 'state.json'))) runcStates.push(id);
    else runcStates.push(`${id} (no state.json)`);
  }
  return {
    stateDir: ip.stateDir,
    mounts: (await Promise.all(instanceDirs(ip).map((d) => mountsUnder(d)))).flat(),
    cgroups,
    runcStates,
    processes: await leakedProcesses(ip.stateDir, ip.cgroupParent),
    containerDirs: await listDir(ip.containersDir),
    runContainerDirs: await listDir(ip.runContainersDir),
    dirExists: await exists(ip.stateDir),
    imageTemps: [
      ...(await listDir(path.join(ip.stateDir, 'images', 'tmp'))).map((n) => `images/tmp/${n}`),
      ...(await listDir(path.join(ip.stateDir, 'images', 'layers'))).filter((n) => n.startsWith('.')).map((n) => `images/layers/${n}`),
    ],
    loops: (await loopsUnder(ip.stateDir)).map((d) => `${d.name} (${d.backFile})`),
    idClaims: claimsOf(ip.stateDir).map((c) => `${c.hostID} (${c.owner.container})`),
  };
}

/** The node's claims on id ranges (walls/id-claims.ts) naming this state dir: a destroy drops its container's. */
function claimsOf(stateDir: string): { hostID: number; owner: IdRecordOwner }[] {
  const dir = path.resolve(stateDir);
  return listClaims(NODE_ID_CLAIMS).flatMap((c) => (c.owner && path.resolve(c.owner.stateDir) === dir ? [{ hostID: c.hostID, owner: c.owner }] : []));
}

export interface NoLeakOptions {
  /** The instance's run dir, when not the default. */
  runDir?: string;
  /** Also require the state dir itself to be gone (after a full cleanup). Default false. */
  dirRemoved?: boolean;
  /** Container dirs that may remain (e.g. private areas kept on purpose). */
  allowContainerDirs?: string[];
  /** Poll this long for stragglers (e.g. a conmon finishing its exit) before failing. Default 3000. */
  waitMs?: number;
  /** The instance's bridge network: also no netns, lease, veth or iptables rule (and, with dirRemoved, no bridge). */
  network?: TestNetwork;
}

function problems(s: LeakSnapshot, opts: NoLeakOptions): string[] {
  const out: string[] = [];
  if (s.mounts.length) out.push(`mounts: ${s.mounts.join(', ')}`);
  if (s.loops.length) out.push(`loop devices: ${s.loops.join(', ')}`);
  if (s.cgroups.length) out.push(`cgroups: ${s.cgroups.join(', ')}`);
  if (s.runcStates.length) out.push(`runc state: ${s.runcStates.join(', ')}`);
  if (s.processes.length) out.push(`processes: ${s.processes.map((p) => `${p.pid} (${p.why}) ${p.cmdline}`).join('; ')}`);
  const dirs = s.containerDirs.filter((d) => !(opts.allowContainerDirs ?? []).includes(d));
  if (dirs.length) out.push(`container dirs: ${dirs.join(', ')}`);
  const runDirs = s.runContainerDirs.filter((d) => !(opts.allowContainerDirs ?? []).includes(d));
  if (runDirs.length) out.push(`container run dirs: ${runDirs.join(', ')}`);
  if (opts.dirRemoved && s.dirExists) out.push(`state dir still exists: ${s.stateDir}`);
  if (s.imageTemps.length) out.push(`image pull leftovers: ${s.imageTemps.join(', ')}`);
  const claims = s.idClaims.filter((c) => !(opts.allowContainerDirs ?? []).some((d) => c.endsWith(`(${d})`)));
  if (claims.length) out.push(`node id claims: ${claims.join(', ')}`);
  return out;
}

/** Throws an Error listing everything the instance left behind. */
export async function assertNoLeaks(stateDir: string, opts: NoLeakOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.waitMs ?? 3000);
  for (;;) {
    const found = problems(await snapshotLeaks(stateDir, opts), opts);
    if (opts.network) found.push(...networkProblems(await snapshotNetworkLeaks(stateDir, opts.network, { runDir: opts.runDir, bridgeGone: opts.dirRemoved })));
    if (found.length === 0) return;
    if (Date.now() >= deadline) throw new Error(`acetate left things behind for ${stateDir}:\n  ${found.join('\n  ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Remove every container of the runtime (keepPrivateArea false), then sweep whatever is left
 * (foreign runc containers created by tests in the instance's root, processes, mounts, cgroups)
 * and delete the dir. Safe to call twice.
 */
export async function cleanupStateDir(stateDir: string, opts: { runtime?: Runtime; runDir?: string; network?: TestNetwork } = {}): Promise<void> {
  const ip = instancePaths(stateDir, opts.runDir);
  const errors: unknown[] = [];
  const runtime = opts.runtime ?? new RuncRuntime({ stateDir, runDir: opts.runDir, templates: new TemplateStore({ stateDir }), sweepLeftovers: true });
  // 1. Through the runtime: every container dir, with or without a record.
  const ids = await readdir(ip.containersDir).catch(() => [] as string[]);
  for (const id of ids) {
    const k = keyOfId(id);
    if (!k) continue;
    await runtime.remove(k.key, { keepPrivateArea: false }).catch((e: unknown) => errors.push(e));
  }
  // 2. Any runc container left in the instance's root (e.g. created by hand in a test).
  const runc = await findBinary('runc');
  if (runc) {
    for (const id of await readdir(ip.runcRoot).catch(() => [] as string[])) {
      await exec(runc, ['--root', ip.runcRoot, 'delete', '--force', id]).catch(() => undefined);
    }
  }
  // 3. Processes (conmon, containers) that still belong to the instance.
  const leaks = await snapshotLeaks(stateDir, opts);
  for (const p of leaks.processes) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // 4. Mounts, deepest first.
  for (const m of await mountsUnder(stateDir)) await unmountAll(m).catch((e: unknown) => errors.push(e));
  // 4b. Loop devices of disk images under the dir (autoclear ones went with their mount).
  for (const d of await loopsUnder(stateDir)) await exec('losetup', ['-d', d.name]).catch((e: unknown) => errors.push(e));
  // 5. Cgroups of the instance.
  const rel = ip.cgroupParent.replace(/^\/+/, '');
  for (const h of await cgroupHierarchies()) {
    const dir = path.join(h, rel);
    for (const pid of await cgroupProcs(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  const deadline = Date.now() + 10_000;
  for (const h of await cgroupHierarchies()) {
    const dir = path.join(h, rel);
    for (;;) {
      try {
        await removeCgroupDir(dir);
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          errors.push(e);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  // 5b. The instance's bridge and any iptables rule of its network.
  if (opts.network) await cleanupNetwork(stateDir, opts.network).catch((e: unknown) => errors.push(e));
  // 6. The dir, unless something is still mounted in it (never delete through a mount).
  for (const dir of instanceDirs(ip)) {
    // Retried: a process the test stopped may still be writing into it for a moment (ENOTEMPTY).
    if ((await mountsUnder(dir)).length === 0) await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    else errors.push(new Error(`not deleting ${dir}: still mounted`));
  }
  // 7. Its entry in the node's registry of instances (walls/instances.ts): the next reader would
  // drop it, but a test run that ends with this instance would leave it on the node.
  await rm(instanceEntryFile(stateDir), { force: true });
  // 8. Its claims on id ranges (a destroy drops them; a test that crashed or kept a private area leaves them).
  // Under the node's lock, as acetate changes claims: another test's process may be taking over a stale one.
  const claims = claimsOf(stateDir);
  if (claims.length) {
    await withIdRecordsLock(NODE_ID_CLAIMS.lockFile, async () => {
      for (const c of claims) dropClaims(NODE_ID_CLAIMS, c.owner, [{ hostID: c.hostID, size: RANGE_SIZE }]);
    }).catch((e: unknown) => errors.push(e));
  }
  if (errors.length) throw new AggregateError(errors, `cleanup of ${stateDir} was incomplete`);
}
