/**
 * What reading the containers parsed, kept across processes in `<runDir>/read-cache.json`, so a
 * short-lived `acetate get` or `plan` over thousands of containers does not read and parse every
 * file again: runc's state.json (~28 KB each, nearly all of it config), the records and status
 * files, and which inits were found under their conmon.
 *
 * It is a cache, never a source of truth: each entry is used only while the file it was parsed
 * from has the same device, inode, size, mtime and ctime (one stat, as the in-memory caches of
 * util/stat-cache.ts do in a long-running `acetate run`), and was already settled when parsed.
 * What is live is read every time: the init's /proc entry (alive, same start time, same parent)
 * and the cgroup's limits. A missing, unreadable, foreign-boot or other-version file is ignored.
 *
 * Only the process holding the node lock (apply, run) writes it, atomically, after a list that
 * changed what is remembered: a read-only command writes nothing.
 */
import path from 'node:path';
import { readSmallFileNow, writeSmallFileAtomic } from '../../util/small-file.js';
import { jsonFilesCache } from '../../util/json-file.js';
import type { FileStamp } from '../../util/stat-cache.js';
import { stateFactsCache } from './runc-state-file.js';
import { currentBootId, supervisedPairs } from './supervision.js';
import type { InstancePaths } from './paths.js';

const VERSION = 1;
export const READ_CACHE_FILE = 'read-cache.json';

interface ReadCacheFile {
  version: number;
  bootId: string;
  runcRoot: string;
  state: [string, FileStamp, unknown][];
  json: [string, FileStamp, unknown][];
  supervised: string[];
}

export function readCachePath(paths: InstancePaths): string {
  return path.join(paths.runDir, READ_CACHE_FILE);
}

/** Per instance (its run dir): loaded once, and the generations last saved. */
const loaded = new Set<string>();
const saved = new Map<string, string>();

function generations(): string {
  return `${stateFactsCache.generation}:${jsonFilesCache.generation}:${supervisedPairs.size}`;
}

/** Loads the saved entries into this process's caches, once per instance. Never throws. */
export function loadReadCache(paths: InstancePaths): void {
  const file = readCachePath(paths);
  if (loaded.has(file)) return;
  loaded.add(file);
  let data: ReadCacheFile;
  try {
    data = JSON.parse(readSmallFileNow(file)) as ReadCacheFile;
  } catch {
    return; // none yet, or unreadable: every file is read
  }
  // pids and process start times are of one boot; paths are of one run dir.
  if (data?.version !== VERSION || data.bootId !== currentBootId() || data.runcRoot !== paths.runcRoot) return;
  if (!Array.isArray(data.state) || !Array.isArray(data.json) || !Array.isArray(data.supervised)) return;
  stateFactsCache.importEntries(data.state.filter(validEntry));
  jsonFilesCache.importEntries(data.json.filter(validEntry));
  supervisedPairs.import(data.supervised);
  saved.set(file, generations());
}

function validEntry(e: unknown): e is [string, FileStamp, unknown] {
  if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || !e[1] || typeof e[1] !== 'object') return false;
  const s = e[1] as Record<string, unknown>;
  return ['dev', 'ino', 'size', 'mtimeMs', 'ctimeMs'].every((k) => typeof s[k] === 'number');
}

/** Saves what this process remembers of this instance's files, when it changed since loaded or saved. Lock holder only. */
export async function saveReadCache(paths: InstancePaths): Promise<void> {
  const file = readCachePath(paths);
  const gen = generations();
  if (saved.get(file) === gen) return;
  const data: ReadCacheFile = {
    version: VERSION,
    bootId: currentBootId(),
    runcRoot: paths.runcRoot,
    state: stateFactsCache.exportEntries(paths.runcRoot),
    json: jsonFilesCache.exportEntries(paths.containersDir),
    supervised: supervisedPairs.export(),
  };
  try {
    await writeSmallFileAtomic(file, JSON.stringify(data));
    saved.set(file, gen);
  } catch {
    // A cache: the next list reads the files, as without one.
  }
}

/** For tests: forget what this process loaded and saved. */
export function resetReadCacheForTests(): void {
  loaded.clear();
  saved.clear();
}
