/**
 * Kubernetes mode: a namespace's levels from its Pod Security Admission labels, read as the
 * API server's pod-security admission reads them (and as controller/security-levels.yaml does):
 * pod-security.kubernetes.io/enforce refuses, /warn warns (an event), /audit records (a log line).
 */
import { isSecurityLevel, type SecurityLevel } from './levels.js';

export type LevelMode = 'enforce' | 'warn' | 'audit';
export const LEVEL_MODES: readonly LevelMode[] = ['enforce', 'warn', 'audit'];

export function levelLabel(mode: LevelMode): string {
  return `pod-security.kubernetes.io/${mode}`;
}

/** The levels of a namespace in each mode. */
export type NamespaceLevels = Record<LevelMode, SecurityLevel>;

/**
 * labels: the namespace's labels (undefined: no such namespace seen). enforceDefault: the level
 * of a namespace without the enforce label (the node's setting for it). warn and audit default to
 * privileged (nothing to say). A label whose value is not a level counts as restricted (the
 * strictest reading of a typo, never a looser one).
 */
export function namespaceLevels(labels: Readonly<Record<string, string>> | undefined, enforceDefault: SecurityLevel): NamespaceLevels {
  const read = (mode: LevelMode, fallback: SecurityLevel): SecurityLevel => {
    const v = labels?.[levelLabel(mode)];
    if (v === undefined) return fallback;
    return isSecurityLevel(v) ? v : 'restricted';
  };
  return { enforce: read('enforce', enforceDefault), warn: read('warn', 'privileged'), audit: read('audit', 'privileged') };
}
