/**
 * Per-node isolation settings from the environment (the DaemonSet and systemd unit set them):
 *   ACETATE_HOST_HIDE=/data:/opt/secret   more paths the host template hides
 *   ACETATE_HOST_SHOW=/srv:/home          default hidden paths this node shows after all
 *   ACETATE_USERNS_RANGE=1000000000:65536 first node id and count of the user namespace range
 *   ACETATE_SECCOMP_PROFILE=/path.json    the RuntimeDefault profile (containers/common or OCI form)
 */
import { parsePathList } from './host-masks.js';
import type { IsolationSettings } from './walls.js';
import { parseIdRange } from './userns.js';

export function isolationSettingsFromEnv(env: NodeJS.ProcessEnv): IsolationSettings {
  const out: IsolationSettings = {};
  if (env.ACETATE_HOST_HIDE) out.hostHide = parsePathList(env.ACETATE_HOST_HIDE);
  if (env.ACETATE_HOST_SHOW) out.hostShow = parsePathList(env.ACETATE_HOST_SHOW);
  if (env.ACETATE_USERNS_RANGE) out.usernsRange = parseIdRange(env.ACETATE_USERNS_RANGE);
  if (env.ACETATE_SECCOMP_PROFILE) out.seccompProfile = env.ACETATE_SECCOMP_PROFILE;
  return out;
}
