/** What this node gives and allows a container, as every command that reads manifests checks it. */
import { detectNodeCapacity, type NodeCapacity } from '../sources/kube/desired.js';
import { levelFor, thisNodeSecurity, type NodeSecurity } from '../policy/node-levels.js';

/** detectNodeCapacity plus the node's security levels ($ACETATE_POD_SECURITY; an unreadable setting throws). */
export function nodeCapacity(env: NodeJS.ProcessEnv = process.env): NodeCapacity {
  return { ...detectNodeCapacity(), security: thisNodeSecurity(env) };
}

/** What a namespace may mount by the node setting (file and Git mode), as the runtime checks it at every start. */
export function hostPathRulesOf(
  sec: NodeSecurity,
): (namespace: string) => { level: ReturnType<typeof levelFor>; allowedHostPaths: readonly string[]; why: string } {
  return (namespace) => ({ level: levelFor(sec, namespace), allowedHostPaths: sec.policy.allowedHostPaths, why: `namespace ${namespace}: ${sec.origin}` });
}
