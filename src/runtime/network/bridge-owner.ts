/**
 * One acetate instance per bridge on the node. Two instances (two state dirs) on one bridge would
 * each keep their own leases and hand out the same address twice, and the firewall plugin's
 * accept rules, found by address only, would be removed by the other's DEL. Rather than share
 * leases between instances, a second instance is refused, with one line naming the first: each
 * instance gets a bridge and subnet of its own (--network-bridge, --network-subnet).
 *
 * The owner is written on the bridge itself, as its interface alias (`ip link set … alias
 * acetate:<stateDir>`): node-wide, seen by every instance, and gone with the bridge (a reboot, an
 * `ip link del`), so no file of the node is left behind. Taking it is a check-and-set under a
 * node-wide flock; the bridge is created first when missing (the bridge plugin uses one that
 * exists). An owner whose state dir is gone, or whose network is now on another bridge, no longer
 * owns it.
 */
import { closeSync, existsSync } from 'node:fs';
import path from 'node:path';
import { exec, ExecError } from '../../util/exec.js';
import { flockFd, openLockFile } from '../../util/flock.js';
import { readSmallFileNow } from '../../util/small-file.js';
import { RuntimeUnavailableError } from '../runtime.js';

const PREFIX = 'acetate:';
/** Serializes the check-and-set of every instance on the node (one small file, never removed). */
export const BRIDGE_LOCK = '/run/lock/acetate-bridges.lock';
const T = { timeoutMs: 30_000 };

/** The state dir written on the bridge, if an acetate wrote one. */
export function bridgeOwner(bridge: string): string | undefined {
  try {
    const alias = readSmallFileNow(`/sys/class/net/${bridge}/ifalias`).trim();
    return alias.startsWith(PREFIX) ? alias.slice(PREFIX.length) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the instance of `stateDir` still uses `bridge` (its state dir exists and its network record names it). */
function stillUses(stateDir: string, bridge: string): boolean {
  if (!existsSync(stateDir)) return false;
  try {
    const saved = JSON.parse(readSmallFileNow(path.join(stateDir, 'network', 'node.json'))) as { bridge?: unknown };
    return saved.bridge === undefined || saved.bridge === bridge;
  } catch {
    return true; // no record yet: it may be writing it now
  }
}

/** Makes `bridge` this instance's, or throws naming the instance that has it. */
export async function claimBridge(bridge: string, stateDir: string, lockFile = BRIDGE_LOCK): Promise<void> {
  const fd = openLockFile(lockFile);
  try {
    if (!(await flockFd(fd, { mode: 'exclusive', wait: 30_000 }))) throw new RuntimeUnavailableError(`bridge ${bridge}: ${lockFile} stayed locked for 30 s`);
    if (!existsSync(`/sys/class/net/${bridge}`)) {
      await exec('ip', ['link', 'add', 'name', bridge, 'type', 'bridge'], T).catch((err: unknown) => {
        if (!(err instanceof ExecError && /File exists/.test(err.stderr))) throw new Error(`cannot create the bridge ${bridge}`, { cause: err });
      });
    }
    const owner = bridgeOwner(bridge);
    if (owner === stateDir) return;
    if (owner && stillUses(owner, bridge)) {
      throw new RuntimeUnavailableError(
        `bridge ${bridge} belongs to the acetate instance of ${owner}: give this one (${stateDir}) a bridge and subnet of its own (--network-bridge, --network-subnet)`,
      );
    }
    await exec('ip', ['link', 'set', 'dev', bridge, 'alias', `${PREFIX}${stateDir}`], T);
  } finally {
    closeSync(fd);
  }
}
