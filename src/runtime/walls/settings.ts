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
 *   ACETATE_ID_RECORDS=/path.json          the node's record of the ranges held, shared by every
 *                                         instance (default /var/lib/acetate/node-id-ranges.json)
 *   ACETATE_NODE_FACTS=/dir                where the host template's node facts are kept for every
 *                                         instance (default /var/lib/acetate/node-facts; see node-facts.ts)
 *   ACETATE_SECCOMP_PROFILE=/path.json    the RuntimeDefault profile (containers/common or OCI form)
 */
import { parsePathList } from './host-masks.js';
import type { IsolationSettings } from './walls.js';
import { IdPoolError, parseIdPool } from './id-pool.js';
import { hostUsersFromEnv, parseHostUsers } from './host-users-option.js';
import { parseIdSetting } from './host-ids.js';

/** Node options given as flags; they win over the environment. */
export interface IsolationFlags {
  hostUsers?: string;
  usernsPool?: string;
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
  else if (env.ACETATE_HOST_USERS) out.hostUsersDefault = hostUsersFromEnv(env);
  if (env.ACETATE_SECCOMP_PROFILE) out.seccompProfile = env.ACETATE_SECCOMP_PROFILE;
  if (env.ACETATE_ID_RECORDS) {
    if (!env.ACETATE_ID_RECORDS.startsWith('/')) throw new IdPoolError(`ACETATE_ID_RECORDS '${env.ACETATE_ID_RECORDS}' must be an absolute path`);
    out.idRecords = env.ACETATE_ID_RECORDS;
  }
  if (env.ACETATE_NODE_FACTS) {
    if (!env.ACETATE_NODE_FACTS.startsWith('/')) throw new IdPoolError(`ACETATE_NODE_FACTS '${env.ACETATE_NODE_FACTS}' must be an absolute path`);
    out.nodeFacts = env.ACETATE_NODE_FACTS;
  }
  return out;
}
