/**
 * Reads a container's state the way `runc state` computes it, from runc's own state.json under
 * acetate's runc root, without spawning runc: a reconcile of one key, and a resync over a
 * thousand keys, then cost file reads instead of a runc process each. Tied to runc 1.x's
 * libcontainer layout; anything unexpected makes the caller fall back to the runc binary.
 */
import { readdir } from 'node:fs/promises';
import { existsNow } from '../../util/small-file.js';
import { ParsedFileCache } from '../../util/stat-cache.js';
import path from 'node:path';
import type { RuncState } from './runc-state.js';
import { hasEnded, readProcStat } from '../../util/processes.js';

interface StateJson {
  id?: string;
  init_process_pid?: number;
  init_process_start?: number;
  created?: string;
  config?: { rootfs?: string; labels?: string[] };
}

/** The state file could not be understood; ask runc itself. */
export class UnreadableStateError extends Error {}

/** Start time of a process in clock ticks (field 22 of /proc/PID/stat) and its parent, undefined if it is gone (or a zombie). */
async function startOf(pid: number): Promise<{ start: number; ppid: number } | undefined> {
  const st = await readProcStat(pid);
  // A zombie has ended (as runc's own status says: Zombie or Dead is stopped), unless only its
  // main thread did (its other threads run on). Without a supervisor its new parent reaps it
  // when it gets to it, which may be seconds away.
  return st && !hasEnded(st) ? { start: st.startTime, ppid: st.ppid } : undefined;
}

/** What acetate uses of a state.json; it changes only when runc writes the file. */
interface StateFacts {
  id?: string;
  pid: number;
  start: number;
  bundle: string;
  rootfs?: string;
  created: string;
  annotations: Record<string, string>;
  /** This init was seen started (no exec fifo): runc never creates the fifo again for it. */
  started?: boolean;
}

/** A JSON string token. */
const STR = '"(?:[^"\\\\]|\\\\.)*"';
/**
 * The head of runc 1.x's state.json, as Go's encoder writes it (fields in struct order, no
 * spaces): id, init pid and start, created, then config's first fields up to rootfs.
 */
const HEAD = new RegExp(
  `^\\{"id":(${STR}),"init_process_pid":(\\d+),"init_process_start":(\\d+),"created":(${STR}),"config":\\{"no_pivot_root":(?:true|false),"parent_death_signal":-?\\d+,"rootfs":(${STR}),`,
);
const LABELS = ',"labels":[';

/** The end of the JSON array of strings starting at `from` (after its '['), or -1. */
function endOfStringArray(text: string, from: number): number {
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5d) return i; // ]
  }
  return -1;
}

/**
 * What acetate uses of a state.json without parsing all of it: the file is ~32 KB, nearly all of
 * it the config's seccomp profile, mounts and masks, and JSON.parse of it was 60 % of `acetate
 * get` over 400 containers. The head is matched at the start of the file; `labels` is the last
 * `,"labels":[` in it: in valid JSON that text can only be a key (a quote inside a string is
 * escaped, so it could not follow a comma there), and what follows config.labels (cgroup and
 * namespace paths keyed by subsystem and namespace type) has no such key. undefined: another
 * layout, then the whole file is parsed.
 */
export function quickFactsOf(text: string): Omit<StateFacts, 'started'> | undefined {
  const head = HEAD.exec(text);
  if (!head) return undefined;
  const at = text.lastIndexOf(LABELS);
  if (at < 0) return undefined;
  const open = at + LABELS.length - 1;
  const close = endOfStringArray(text, open + 1);
  if (close < 0 || (text[close + 1] !== ',' && text[close + 1] !== '}')) return undefined;
  let raw: unknown;
  try {
    raw = {
      id: JSON.parse(head[1]!),
      init_process_pid: Number(head[2]),
      init_process_start: Number(head[3]),
      created: JSON.parse(head[4]!),
      config: { rootfs: JSON.parse(head[5]!), labels: JSON.parse(text.slice(open, close + 1)) },
    };
  } catch {
    return undefined;
  }
  const labels = (raw as StateJson).config?.labels;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) return undefined;
  return factsFromJson(raw as StateJson, '');
}

function factsOf(text: string, file: string): StateFacts {
  const quick = quickFactsOf(text);
  if (quick) return quick;
  let raw: StateJson;
  try {
    raw = JSON.parse(text) as StateJson;
  } catch (err) {
    throw new UnreadableStateError(`cannot parse ${file}`, { cause: err });
  }
  return factsFromJson(raw, file);
}

function factsFromJson(raw: StateJson, file: string): StateFacts {
  const pid = raw.init_process_pid;
  const labels = raw.config?.labels;
  if (typeof pid !== 'number' || typeof raw.init_process_start !== 'number' || !Array.isArray(labels)) {
    throw new UnreadableStateError(`${file} has an unknown layout`);
  }
  const annotations: Record<string, string> = {};
  let bundle = '';
  for (const l of labels) {
    const i = l.indexOf('=');
    if (i < 0) continue;
    if (l.slice(0, i) === 'bundle') bundle = l.slice(i + 1);
    else annotations[l.slice(0, i)] = l.slice(i + 1);
  }
  return {
    id: raw.id,
    pid,
    start: raw.init_process_start,
    bundle,
    ...(raw.config?.rootfs ? { rootfs: raw.config.rootfs } : {}),
    created: raw.created ?? '',
    annotations,
  };
}

/** Parsed once per change of the file (see util/stat-cache.ts); liveness is checked every time. */
const stateFiles = new ParsedFileCache<StateFacts>(factsOf);

/** The parsed state files, kept across processes by read-cache.ts (each entry checked against its file's stamp at use). */
export const stateFactsCache: Pick<ParsedFileCache<unknown>, 'exportEntries' | 'importEntries' | 'generation'> = stateFiles as ParsedFileCache<unknown>;

/** State of container `id` under `root`; undefined when runc does not know it. */
export async function readRuncStateFile(root: string, id: string): Promise<RuncState | undefined> {
  let facts: StateFacts | undefined;
  try {
    facts = stateFiles.read(path.join(root, id, 'state.json'));
  } catch (err) {
    if (err instanceof UnreadableStateError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new UnreadableStateError(`cannot read runc state of ${id}`, { cause: err });
  }
  if (!facts) return undefined;
  const { pid } = facts;
  // As runc: the init process alive with the same start time is running (or created, while the
  // exec fifo still waits for `runc start`); otherwise the container is stopped.
  const proc = pid > 0 ? await startOf(pid) : undefined;
  const alive = proc !== undefined && proc.start === facts.start;
  const created = alive && !facts.started && existsNow(path.join(root, id, 'exec.fifo'));
  if (alive && !created) facts.started = true;
  return {
    id: facts.id ?? id,
    pid: alive ? pid : 0,
    status: alive ? (created ? 'created' : 'running') : 'stopped',
    bundle: facts.bundle,
    ...(facts.rootfs ? { rootfs: facts.rootfs } : {}),
    created: facts.created,
    annotations: facts.annotations,
    ...(alive ? { initPpid: proc.ppid } : {}),
  };
}

/** Every container under `root`, from their state files. */
export async function readRuncStateFiles(root: string): Promise<RuncState[]> {
  let ids: string[];
  try {
    ids = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const states = await Promise.all(ids.map((id) => readRuncStateFile(root, id)));
  return states.filter((s): s is RuncState => s !== undefined);
}
