/**
 * Where the host template's node facts are kept between processes: the owner-only entries of /etc
 * and the package dirs (etc-walk.ts) and what dpkg's packages own (dpkg-owned.ts). Both are pure
 * functions of the node's files, so they are kept once per node, in /var/lib/acetate/node-facts/
 * (ACETATE_NODE_FACTS names another dir), one file per fact and node root (`<fact>-<hash of
 * hostRoot>.json`): every state dir's first process used to compute them again (≈0.7 s of CPU;
 * `npm test` makes ≈150 state dirs). Their validity rules stay the callers' (mtimes, TTL).
 *
 * They decide what the host template hides from tenants, so a file is taken only when nobody but
 * root could have written it (util/trusted-file.ts, as the node's id records): the dir and the file
 * root's (or this process's user's) and writable by their owner only, not a symlink, at most
 * 16 MiB; anything else, or a file that is not JSON, is as if absent (computed again, and the
 * rename of the new answer replaces it). Written whole through a temp file and rename: processes
 * writing at once each leave a whole file, and any of them is right (the same function of the node).
 *
 * When the node-wide dir cannot be made or is not trusted (a read-only /var/lib, a dir someone
 * else owns), the instance's own <stateDir>/host-view/ holds them, under the names it always did.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { readTrustedFileSync, untrustedWhy } from '../../util/trusted-file.js';
import { writeSmallFileAtomic } from '../../util/small-file.js';
import { DEFAULT_STATE_DIR } from '../default-dirs.js';

export const DEFAULT_NODE_FACTS_DIR = path.join(DEFAULT_STATE_DIR, 'node-facts');
export const NODE_FACTS_ENV = 'ACETATE_NODE_FACTS';

/** The largest fact file read: this node's are ≈ 100 KB (owner-only) and ≈ 60 KB (dpkg). */
const MAX_FACTS_BYTES = 16 * 1024 * 1024;

export type FactName = 'owner-only' | 'dpkg-owned';

/** One node's cached facts (by hostRoot), in the node-wide dir or the state dir's. */
export interface FactsStore {
  /** The parsed file, or undefined: absent, refused (see above) or not JSON. */
  read(name: FactName): unknown;
  /** Writes it whole (temp file and rename, mode 0600); throws when it cannot. */
  write(name: FactName, value: unknown): Promise<void>;
  /** The file `name` is kept in (for messages and tests). */
  fileOf(name: FactName): string;
}

/** Which node-wide dirs this process found usable (made, root's, writable by root only). */
const usableDirs = new Map<string, boolean>();

function nodeDirUsable(dir: string): boolean {
  let ok = usableDirs.get(dir);
  if (ok === undefined) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = lstatSync(dir);
      ok = st.isDirectory() && untrustedWhy(dir, st) === undefined;
    } catch {
      ok = false; // not made (read-only, not ours): the state dir's then
    }
    usableDirs.set(dir, ok);
  }
  return ok;
}

/**
 * The store of hostRoot's facts: in nodeDir (undefined: the default; '' or a dir that cannot be
 * used: none) if it can be used, else in fallbackDir (<stateDir>/host-view).
 */
export function factsStore(hostRoot: string, nodeDir: string | undefined, fallbackDir: string): FactsStore {
  const dir = nodeDir ?? DEFAULT_NODE_FACTS_DIR;
  const nodeWide = dir !== '' && nodeDirUsable(dir);
  const hash = createHash('sha256').update(path.resolve(hostRoot)).digest('hex').slice(0, 16);
  const fileOf = (name: FactName) => (nodeWide ? path.join(dir, `${name}-${hash}.json`) : path.join(fallbackDir, `${name}.json`));
  return {
    fileOf,
    read(name) {
      try {
        const text = readTrustedFileSync(fileOf(name), {
          what: 'a node facts file',
          maxBytes: MAX_FACTS_BYTES,
          error: (message, cause) => new Error(message, cause === undefined ? undefined : { cause }),
        });
        return text === undefined ? undefined : (JSON.parse(text) as unknown);
      } catch {
        return undefined; // refused or not JSON: computed again, as if absent
      }
    },
    async write(name, value) {
      const file = fileOf(name);
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      await writeSmallFileAtomic(file, JSON.stringify(value), 0o600);
    },
  };
}
