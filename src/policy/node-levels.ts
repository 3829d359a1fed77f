/**
 * Which security level each namespace gets on this node (file and Git mode; in Kubernetes mode the
 * namespace's pod-security.kubernetes.io/enforce label wins, see namespace-levels.ts), and what the
 * node allows beyond the levels (host paths).
 *
 * The setting is $ACETATE_POD_SECURITY, either inline:
 *   default=baseline,tenant-a=restricted,infra=privileged,allow-host-path=/srv/shared
 * or the absolute path of a YAML file:
 *   default: baseline
 *   namespaces: { tenant-a: restricted, infra: privileged }
 *   allowedHostPaths: [/srv/shared]
 * Unset: /etc/acetate/pod-security.yaml when it exists, else the built-in default, baseline for
 * every namespace and no host path (DEFAULT_LEVEL: why). One setting read the same way by
 * validate, plan, apply and run, so that a shell and the systemd unit agree when they share the
 * file. A setting that cannot be read or parsed is an error naming it: never a silent fallback to
 * a looser level.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { jsYaml } from '../util/lazy-yaml.js';
import { hostUsersFromEnv } from '../runtime/walls/host-users-option.js';
import { isRecord } from '../api/validation-issue.js';
import { isSecurityLevel, SECURITY_LEVELS, type NodeSecurityPolicy, type SecurityLevel } from './levels.js';

/**
 * baseline, not Kubernetes' privileged: a node that runs other people's containers must not make
 * "write a manifest" equal "be root on the node" (mount /etc, add SYS_ADMIN, join its network).
 * A namespace that needs more is named explicitly (infra=privileged), and `plan` shows the refusals.
 */
export const DEFAULT_LEVEL: SecurityLevel = 'baseline';
export const DEFAULT_SETTING_FILE = '/etc/acetate/pod-security.yaml';
export const SETTING_ENV = 'ACETATE_POD_SECURITY';

/** What this node enforces, from its setting. */
export interface NodeSecurity {
  defaultLevel: SecurityLevel;
  namespaces: ReadonlyMap<string, SecurityLevel>;
  policy: NodeSecurityPolicy;
  /** Where the setting came from, for messages ('built-in default', a file, $ACETATE_POD_SECURITY). */
  origin: string;
}

export class SecuritySettingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecuritySettingError';
  }
}

export function levelFor(sec: Pick<NodeSecurity, 'defaultLevel' | 'namespaces'>, namespace: string): SecurityLevel {
  return sec.namespaces.get(namespace) ?? sec.defaultLevel;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function level(v: unknown, where: string): SecurityLevel {
  if (!isSecurityLevel(v)) throw new SecuritySettingError(`${where}: '${String(v)}' is not a security level (${SECURITY_LEVELS.join(', ')})`);
  return v;
}

function hostPath(v: unknown, where: string): string {
  if (typeof v !== 'string' || !path.isAbsolute(v) || v.split('/').includes('..') || v.includes('\0'))
    throw new SecuritySettingError(`${where}: '${String(v)}' must be an absolute host path without '..'`);
  return v;
}

/** `default=baseline,ns=level,allow-host-path=/dir`. */
export function parseInlineSetting(text: string, origin: string, base: Omit<NodeSecurityPolicy, 'allowedHostPaths'>): NodeSecurity {
  let defaultLevel = DEFAULT_LEVEL;
  const namespaces = new Map<string, SecurityLevel>();
  const allowed: string[] = [];
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new SecuritySettingError(`${origin}: '${part}' is not NAME=VALUE (e.g. default=baseline, tenant-a=restricted, allow-host-path=/srv/shared)`);
    const [k, v] = [part.slice(0, eq), part.slice(eq + 1)];
    if (k === 'default') defaultLevel = level(v, `${origin}: default`);
    else if (k === 'allow-host-path') allowed.push(hostPath(v, `${origin}: allow-host-path`));
    else if (NAMESPACE.test(k)) namespaces.set(k, level(v, `${origin}: namespace ${k}`));
    else throw new SecuritySettingError(`${origin}: '${k}' is neither default, allow-host-path nor a namespace name`);
  }
  return { defaultLevel, namespaces, policy: { ...base, allowedHostPaths: allowed }, origin };
}

/** The YAML file form. */
export function parseSettingFile(text: string, file: string, base: Omit<NodeSecurityPolicy, 'allowedHostPaths'>): NodeSecurity {
  let doc: unknown;
  try {
    doc = jsYaml().load(text, { schema: jsYaml().CORE_SCHEMA });
  } catch (err) {
    throw new SecuritySettingError(`${file}: not YAML: ${(err as Error).message}`, { cause: err });
  }
  if (doc === undefined || doc === null) doc = {};
  if (!isRecord(doc)) throw new SecuritySettingError(`${file}: must be a mapping with default, namespaces, allowedHostPaths`);
  for (const k of Object.keys(doc))
    if (!['default', 'namespaces', 'allowedHostPaths'].includes(k))
      throw new SecuritySettingError(`${file}: unknown field '${k}' (default, namespaces, allowedHostPaths)`);
  const defaultLevel = doc.default === undefined ? DEFAULT_LEVEL : level(doc.default, `${file}: default`);
  const namespaces = new Map<string, SecurityLevel>();
  if (doc.namespaces !== undefined) {
    if (!isRecord(doc.namespaces)) throw new SecuritySettingError(`${file}: namespaces must be a mapping of namespace to level`);
    for (const [ns, l] of Object.entries(doc.namespaces)) {
      if (!NAMESPACE.test(ns)) throw new SecuritySettingError(`${file}: namespaces: '${ns}' is not a namespace name`);
      namespaces.set(ns, level(l, `${file}: namespaces.${ns}`));
    }
  }
  const list = doc.allowedHostPaths ?? [];
  if (!Array.isArray(list)) throw new SecuritySettingError(`${file}: allowedHostPaths must be a list of absolute paths`);
  const allowed = list.map((p, i) => hostPath(p, `${file}: allowedHostPaths[${i}]`));
  return { defaultLevel, namespaces, policy: { ...base, allowedHostPaths: allowed }, origin: file };
}

/**
 * The node's setting from the environment (see the file comment). base: what the node itself
 * decides (whether it runs containers with its own ids by default; how it resolves symlinks).
 */
export function nodeSecurityFromEnv(env: NodeJS.ProcessEnv, base: Omit<NodeSecurityPolicy, 'allowedHostPaths'>): NodeSecurity {
  const v = env[SETTING_ENV]?.trim();
  const fromFile = (file: string): NodeSecurity => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new SecuritySettingError(`cannot read the security level setting ${file}: ${(err as Error).message}`, { cause: err });
    }
    return parseSettingFile(text, file, base);
  };
  if (v) return v.startsWith('/') ? fromFile(v) : parseInlineSetting(v, `$${SETTING_ENV}`, base);
  if (existsSync(DEFAULT_SETTING_FILE)) return fromFile(DEFAULT_SETTING_FILE);
  return { defaultLevel: DEFAULT_LEVEL, namespaces: new Map(), policy: { ...base, allowedHostPaths: [] }, origin: 'built-in default' };
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return realpathSync.native(p);
  } catch {
    return undefined; // missing: runc creates it, nothing to follow
  }
}

/**
 * This node's setting, host paths resolved with realpath. Whether a container that does not say
 * hostUsers runs with the node's ids is the node option --host-users / ACETATE_HOST_USERS (main
 * puts the flag into the environment, so every reader agrees; one parser, host-users-option.ts,
 * so a spelling the runtime refuses is refused here too); absent, it gets a user namespace.
 */
export function thisNodeSecurity(env: NodeJS.ProcessEnv = process.env): NodeSecurity {
  return nodeSecurityFromEnv(env, { hostUsersByDefault: hostUsersFromEnv(env) ?? false, resolve: realpathOrUndefined });
}
