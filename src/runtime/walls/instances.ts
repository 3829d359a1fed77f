/**
 * Every acetate instance's state and run dir on the node, so the host template hides them all,
 * not only its own instance's (ACETATE_HOST_SHOW=/tmp must not show another instance's state dir
 * under /tmp: containers' private areas, records, logs).
 *
 * Each instance, when it takes its node lock, writes a marker file in its state dir
 * (.acetate-state-dir: what it is, which run dir goes with it) and an entry naming both in
 * /var/lib/acetate/instances/ (node-wide, in the default state dir, which the host template always
 * hides). Reading the entries, one whose state dir no longer holds the marker (a removed test
 * dir) is dropped. Why a registry and not a search for the marker: a state dir may be at any
 * depth of a shown place (/tmp/x/y/state); walking the shown places at each start would cost in
 * proportion to the node's files.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { readJson, writeJsonAtomic } from '../../util/json-file.js';
import { writeSmallFileAtomic } from '../../util/small-file.js';
import { DEFAULT_STATE_DIR } from '../default-dirs.js';

export const INSTANCE_MARKER = '.acetate-state-dir';
export const INSTANCES_DIR = path.join(DEFAULT_STATE_DIR, 'instances');
/** At most this many entries are read (a node with more instances is not a node acetate expects). */
const MAX_INSTANCES = 1000;

export interface Instance {
  stateDir: string;
  runDir: string;
}

const entryName = (stateDir: string) => `${createHash('sha256').update(stateDir).digest('hex').slice(0, 24)}.json`;

/** The registry's entry of a state dir (a removed one's is dropped by the next reader; a test's cleanup removes it at once). */
export function instanceEntryFile(stateDir: string, registry = INSTANCES_DIR): string {
  return path.join(registry, entryName(stateDir));
}

/** Marks stateDir as acetate's and records it node-wide (idempotent; cheap when already so). */
export async function registerInstance(inst: Instance, registry = INSTANCES_DIR): Promise<void> {
  const marker = path.join(inst.stateDir, INSTANCE_MARKER);
  const text = `acetate state dir; run dir ${inst.runDir}\n`;
  if ((await readFile(marker, 'utf8').catch(() => '')) !== text) await writeSmallFileAtomic(marker, text);
  const file = instanceEntryFile(inst.stateDir, registry);
  const had = await readJson<Instance>(file).catch(() => undefined);
  if (had?.stateDir === inst.stateDir && had.runDir === inst.runDir) return;
  await mkdir(registry, { recursive: true, mode: 0o700 });
  await writeJsonAtomic(file, { stateDir: inst.stateDir, runDir: inst.runDir } satisfies Instance);
}

/** The instances recorded on the node whose state dir still holds the marker (the others' entries are removed). */
export async function knownInstances(hostRoot: string, registry = INSTANCES_DIR): Promise<Instance[]> {
  const dir = path.join(hostRoot, registry);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).slice(0, MAX_INSTANCES);
  const out = await Promise.all(
    names.map(async (n) => {
      const e = await readJson<Instance>(path.join(dir, n)).catch(() => undefined);
      if (typeof e?.stateDir !== 'string' || typeof e.runDir !== 'string' || !path.isAbsolute(e.stateDir) || !path.isAbsolute(e.runDir)) return undefined;
      const marked = await readFile(path.join(hostRoot, e.stateDir, INSTANCE_MARKER), 'utf8').then(
        () => true,
        () => false,
      );
      if (!marked) await unlink(path.join(dir, n)).catch(() => undefined);
      return marked ? { stateDir: e.stateDir, runDir: e.runDir } : undefined;
    }),
  );
  return out.filter((e): e is Instance => !!e).sort((a, b) => a.stateDir.localeCompare(b.stateDir));
}

/**
 * Every other acetate instance's state and run dir the node knows of, as dirs no hostPath may lead
 * into or above (rule acetateDirs, hostpath-open.ts): a hostPath of another instance's
 * containers/<id>/upper would show a tenant that instance's containers' files (tester finding 6b).
 * From the registry above, and the state dirs the node's id records name as owners (an instance
 * that has not registered, e.g. one started before the registry existed, still holds records).
 * `recordsStateDirs`: those owners' state dirs (id-records.ts, read by the caller).
 */
export async function otherInstanceDirs(
  hostRoot: string,
  recordsStateDirs: readonly string[],
  registry = INSTANCES_DIR,
): Promise<{ dir: string; what: string }[]> {
  const out: { dir: string; what: string }[] = [];
  for (const i of await knownInstances(hostRoot, registry)) {
    out.push({ dir: path.join(hostRoot, i.stateDir), what: `state dir of an instance on this node (registered in ${registry})` });
    out.push({ dir: path.join(hostRoot, i.runDir), what: `run dir of an instance on this node (registered in ${registry})` });
  }
  // '/' or a relative name is no state dir: one in a record would refuse every hostPath.
  for (const d of new Set(recordsStateDirs))
    if (path.isAbsolute(d) && path.resolve(d) !== '/')
      out.push({ dir: path.join(hostRoot, path.resolve(d)), what: 'state dir of an instance on this node (named by the node id records)' });
  return out;
}
