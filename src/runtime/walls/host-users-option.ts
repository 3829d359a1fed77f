/**
 * The node option --host-users / ACETATE_HOST_USERS: what a container that does not say
 * securityContext.hostUsers gets. One parser for both readers (settings.ts for the runtime,
 * policy/node-levels.ts for the security levels), so they cannot disagree on a spelling.
 */
import { IdPoolError } from './id-pool.js';

export function parseHostUsers(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new IdPoolError(
    `${what} '${value}' must be true (containers use the node's ids unless they say hostUsers: false) or false (a user namespace unless they say hostUsers: true)`,
  );
}

/** $ACETATE_HOST_USERS parsed; unset or empty is undefined (the default: a user namespace). */
export function hostUsersFromEnv(env: NodeJS.ProcessEnv): boolean | undefined {
  return env.ACETATE_HOST_USERS ? parseHostUsers(env.ACETATE_HOST_USERS, 'ACETATE_HOST_USERS') : undefined;
}
