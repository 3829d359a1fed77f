/**
 * Per-node isolation settings from the environment (the DaemonSet and systemd unit set them) and
 * the global flags that override it (`acetate --host-users … --userns-pool …`):
 *   ACETATE_HOST_HIDE=/data:/opt/secret   more paths the host template hides
 *   ACETATE_HOST_SHOW=/srv:/home          default hidden paths this node shows after all
 *   ACETATE_HOST_IDS=1000,2000-2010       more node ids whose files the host template's `/` shows
 *                                         as theirs in a user namespace (host-ids.ts)
 *   ACETATE_HOST_USERS=false              what an absent securityContext.hostUsers means (default
 *                                         false: a user namespace with the container's own range)
 *   ACETATE_USERNS_POOL=1000000000:655360000  first node id and count of the ids containers'
 *                                         ranges are cut from (ACETATE_USERNS_RANGE: earlier name)
 *   ACETATE_SECCOMP_PROFILE=/path.json    the RuntimeDefault profile (containers/common or OCI form)
 */
import { parsePathList } from './host-masks.js';
import type { IsolationSettings } from './walls.js';
import { IdPoolError, parseIdPool } from './id-pool.js';
import { parseIdSetting } from './host-ids.js';

/** Node options given as flags; they win over the environment. */
export interface IsolationFlags {
  hostUsers?: string;
  usernsPool?: string;
}

export function parseHostUsers(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new IdPoolError(
    `${what} '${value}' must be true (containers use the node's ids unless they say hostUsers: false) or false (a user namespace unless they say hostUsers: true)`,
  );
}

export function isolationSettingsFromEnv(env: NodeJS.ProcessEnv, flags: IsolationFlags = {}): IsolationSettings {
  const out: IsolationSettings = {};
  if (env.ACETATE_HOST_HIDE) out.hostHide = parsePathList(env.ACETATE_HOST_HIDE);
  if (env.ACETATE_HOST_SHOW) out.hostShow = parsePathList(env.ACETATE_HOST_SHOW);
  if (env.ACETATE_HOST_IDS) out.hostIds = parseIdSetting(env.ACETATE_HOST_IDS, 'ACETATE_HOST_IDS');
  if (flags.usernsPool !== undefined) out.usernsPool = parseIdPool(flags.usernsPool, '--userns-pool');
  else if (env.ACETATE_USERNS_POOL) out.usernsPool = parseIdPool(env.ACETATE_USERNS_POOL, 'ACETATE_USERNS_POOL');
  // The earlier name: one range every unprivileged container shared; now the pool their ranges come from.
  else if (env.ACETATE_USERNS_RANGE) out.usernsPool = parseIdPool(env.ACETATE_USERNS_RANGE, 'ACETATE_USERNS_RANGE');
  if (flags.hostUsers !== undefined) out.hostUsersDefault = parseHostUsers(flags.hostUsers, '--host-users');
  else if (env.ACETATE_HOST_USERS) out.hostUsersDefault = parseHostUsers(env.ACETATE_HOST_USERS, 'ACETATE_HOST_USERS');
  if (env.ACETATE_SECCOMP_PROFILE) out.seccompProfile = env.ACETATE_SECCOMP_PROFILE;
  return out;
}
