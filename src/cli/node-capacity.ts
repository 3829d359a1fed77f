/** What this node gives and allows a container, as every command that reads manifests checks it. */
import { detectNodeCapacity, type NodeCapacity } from '../sources/kube/desired.js';
import { thisNodeSecurity } from '../policy/node-levels.js';

/** detectNodeCapacity plus the node's security levels ($ACETATE_POD_SECURITY; an unreadable setting throws). */
export function nodeCapacity(env: NodeJS.ProcessEnv = process.env): NodeCapacity {
  return { ...detectNodeCapacity(), security: thisNodeSecurity(env) };
}
