/**
 * A ManifestCache kept in a file across processes, so `acetate plan` over thousands of manifests
 * does not parse and validate again what `acetate run` or `apply` already did: reading, YAML
 * parsing, schema validation, normalization and hashing were most of a no-op plan's time.
 *
 * The cache file is only a shortcut: each entry is used only while its manifest has the same
 * device, inode, size, mtime and ctime (and was settled when parsed, see util/stat-cache.ts), and
 * the whole file only when everything else a result depends on is the same: this build of
 * acetate, the node name, what the node can give and allows (capacity, security levels, as read
 * now), the protected dirs and every ACETATE_* variable but a few (NOT_READING). Anything else
 * (missing, unreadable, another fingerprint) and the manifests are read as without it. Not the node's addresses: they
 * change under a running loop (its own bridge's gateway appears after it starts), which made every
 * later `plan` parse everything again; an entry that checked a hostIP records the verdict and is
 * used only while it holds (FileResult.hostIPs).
 *
 * Written only by processes that hold the node lock (apply, run); plan only reads it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { buildStamp } from '../../util/build-stamp.js';
import { readSmallFileNow, writeSmallFileAtomic } from '../../util/small-file.js';
import { protectedDirs } from '../../api/protected-paths.js';
import type { NodeCapacity } from '../kube/desired.js';
import type { ManifestCache, ManifestCacheEntry } from './manifest-cache.js';

const VERSION = 1;

interface CacheFile {
  version: number;
  fingerprint: string;
  entries: ManifestCacheEntry[];
}

/** Maps and Sets as sorted entries, so equal settings give equal text. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return [...value].sort();
  if (value instanceof Set) return [...value].sort();
  return value;
}

/**
 * ACETATE_* variables that decide nothing in a manifest's reading: the loop's timings and logging,
 * and the systemd unit's own (its command line's, controller/systemd/acetate.service). A `plan`
 * typed in a shell has none of them where the unit's `run` has some, and would otherwise parse
 * every manifest again and be planned by itself instead of by the loop (cli/loop-planner.ts).
 * Every other one counts, known or not.
 */
const NOT_READING = new Set([
  'ACETATE_MANIFESTS',
  'ACETATE_OPTS',
  'ACETATE_SHUTDOWN_OPTS',
  'ACETATE_CRASHLOOP_BASE_MS',
  'ACETATE_CRASHLOOP_MAX_MS',
  'ACETATE_CRASHLOOP_RESET_MS',
  'ACETATE_BACKOFF_BASE_MS',
  'ACETATE_BACKOFF_MAX_MS',
  'ACETATE_GIT_BACKOFF_BASE_MS',
  'ACETATE_NETWORK_CHECK_MS',
  'ACETATE_LOG_LEVEL',
  'ACETATE_DEBUG',
]);

/** Everything a file's result depends on besides the file itself. */
export function manifestFingerprint(opts: { nodeName?: string; capacity?: NodeCapacity; env?: NodeJS.ProcessEnv }): string {
  const env = opts.env ?? process.env;
  const acetateEnv = Object.keys(env)
    .filter((k) => k.startsWith('ACETATE_') && !NOT_READING.has(k))
    .sort()
    .map((k) => [k, env[k]]);
  // Not the addresses themselves (see above): only whether hostIPs are checked at all.
  const { addresses, ...capacity } = opts.capacity ?? {};
  const text = JSON.stringify(
    {
      v: VERSION,
      build: buildStamp(),
      nodeName: opts.nodeName ?? null,
      capacity: opts.capacity ? { ...capacity, addressesChecked: !!addresses } : null,
      protectedDirs: protectedDirs(),
      env: acetateEnv,
    },
    replacer,
  );
  return createHash('sha256').update(text).digest('hex');
}

/** Loads the saved entries into `cache` when the fingerprint is the same. Never throws. Returns whether it did. */
export function loadManifestCacheFile(file: string, fingerprint: string, cache: ManifestCache): boolean {
  let text: string;
  try {
    text = readSmallFileNow(file);
  } catch {
    return false;
  }
  return importManifestCacheText(text, fingerprint, cache);
}

/**
 * loadManifestCacheFile, the file read off the event loop's thread: what the process has in
 * flight goes on meanwhile (`plan`'s question to the loop is sent while the file is read).
 */
export async function readManifestCacheFile(file: string, fingerprint: string, cache: ManifestCache): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  return text !== undefined && importManifestCacheText(text, fingerprint, cache);
}

/** The entries of a cache file's text into `cache` when its fingerprint is the same. Never throws. */
function importManifestCacheText(text: string, fingerprint: string, cache: ManifestCache): boolean {
  let data: CacheFile;
  try {
    data = JSON.parse(text) as CacheFile;
  } catch {
    return false;
  }
  if (data?.version !== VERSION || data.fingerprint !== fingerprint || !Array.isArray(data.entries)) return false;
  cache.importEntries(data.entries.filter(validEntry));
  return true;
}

function validEntry(e: ManifestCacheEntry): boolean {
  const s = e?.stamp as unknown as Record<string, unknown> | undefined;
  const r = e?.result;
  return (
    typeof e?.file === 'string' &&
    !!s &&
    ['dev', 'ino', 'size', 'mtimeMs', 'ctimeMs'].every((k) => typeof s[k] === 'number') &&
    !!r &&
    r.file === e.file &&
    Array.isArray(r.containers) &&
    Array.isArray(r.problems) &&
    Array.isArray(r.warnings) &&
    (r.hostIPs === undefined || (typeof r.hostIPs === 'object' && r.hostIPs !== null && Object.values(r.hostIPs).every((v) => typeof v === 'boolean')))
  );
}

/** Saves `cache` (lock holders only). A failure is ignored: the next reader parses the files. */
export async function saveManifestCacheFile(file: string, fingerprint: string, cache: ManifestCache): Promise<void> {
  const data: CacheFile = { version: VERSION, fingerprint, entries: cache.exportEntries() };
  try {
    await writeSmallFileAtomic(file, JSON.stringify(data));
  } catch {
    // a cache
  }
}
