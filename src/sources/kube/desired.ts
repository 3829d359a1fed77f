/**
 * A Container object from the API server → what the node should run, or why it cannot.
 *
 * The CRD schema already ran in the API server, but some objects still get through and must not
 * crash-loop the controller: an object stored under an older CRD, a label-selected object without
 * spec.nodeName, a quantity valid in syntax that this node cannot satisfy (more CPUs or memory than
 * it has). They become a SourceProblem (their key is protected: an existing container is left as
 * it is) and the status says why; they are looked at again only when the object changes.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { containerKey, type DesiredContainer, type ResourceName } from '../../api/types.js';
import { validateManifest } from '../../api/validate.js';
import { normalizeManifest } from '../../api/normalize.js';
import { formatCpu, formatMemory } from '../../api/quantity.js';
import type { SourceProblem } from '../../contracts/source.js';
import type { KubeContainer } from './client.js';
import { NODE_LABEL } from './constants.js';
import type { NodeSecurity } from '../../policy/node-levels.js';
import { checkSecurityLevel, violationMessage, type NodeSecurityPolicy, type SecurityLevel } from '../../policy/levels.js';
import { liveNodeAddresses, unassignableHostIP, type NodeAddresses } from '../node-addresses.js';

/** What this node can give a container at most. An absent field is not checked. */
export interface NodeCapacity {
  cpuMillis?: number;
  memoryBytes?: number;
  pids?: number;
  /**
   * The node's addresses as they are at the call: a published port's hostIP must be one (see
   * node-addresses.ts). A function, not a value: a long-running process's node gains addresses
   * (its own bridge's gateway), and the manifest cache's fingerprint leaves them out. A source
   * checks them when it converts an object (a file read again, a Kubernetes object changed).
   */
  addresses?: () => NodeAddresses;
  /**
   * The security levels this node enforces (src/policy): what it allows a container, as the rest
   * is what it can give. Absent: no level is checked (in-process callers that did not ask).
   */
  security?: NodeSecurity;
}

export function detectNodeCapacity(): NodeCapacity {
  const cap: NodeCapacity = {
    cpuMillis: (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length) * 1000,
    memoryBytes: os.totalmem(),
    addresses: liveNodeAddresses(),
  };
  try {
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
    if (Number.isSafeInteger(pidMax) && pidMax > 0) cap.pids = pidMax;
  } catch {
    // not Linux, or /proc not mounted: pids are not checked
  }
  return cap;
}

export type Conversion =
  | { kind: 'desired'; key: string; desired: DesiredContainer }
  /** Cannot be run: reported, key protected. `infeasible` lists resources beyond node capacity. */
  | { kind: 'invalid'; key: string; problem: SourceProblem; generation?: number; infeasible: ResourceName[] }
  /** Has a deletionTimestamp: not desired any more (its container is destroyed, then the finalizer removed). */
  | { kind: 'terminating'; key: string }
  /** spec.nodeName names another node (e.g. seen through the label selector): not ours. */
  | { kind: 'foreign'; key: string; nodeName: string };

export interface ConvertContext {
  node: string;
  /** false: do not check capacity. */
  capacity?: NodeCapacity | false;
  /** The object's namespace's enforced level and what the node allows (absent: not checked). */
  security?: { level: SecurityLevel; policy: NodeSecurityPolicy; why: string };
}

export function originOfKey(key: string): string {
  return `kube:${key}`;
}

function invalid(key: string, obj: KubeContainer, field: string | undefined, message: string, infeasible: ResourceName[] = []): Conversion {
  const problem: SourceProblem = { origin: originOfKey(key), message, keys: [key], kind: 'invalid' };
  if (field) problem.field = field;
  return { kind: 'invalid', key, problem, generation: obj.metadata.generation, infeasible };
}

export function convertObject(obj: KubeContainer, ctx: ConvertContext): Conversion {
  const key = containerKey(obj.metadata.namespace ?? 'default', obj.metadata.name);
  if (obj.metadata.deletionTimestamp) return { kind: 'terminating', key };
  const spec = obj.spec && typeof obj.spec === 'object' && !Array.isArray(obj.spec) ? (obj.spec as Record<string, unknown>) : undefined;
  const nodeName = spec?.nodeName;
  if (nodeName === undefined || nodeName === null || nodeName === '') {
    const label = obj.metadata.labels?.[NODE_LABEL];
    return invalid(
      key,
      obj,
      'spec.nodeName',
      `spec.nodeName is required for a Container in Kubernetes${label ? ` (its label ${NODE_LABEL} says ${label})` : ''}: set it to the node that runs it, e.g. ${ctx.node}`,
    );
  }
  if (nodeName !== ctx.node) return { kind: 'foreign', key, nodeName: String(nodeName) };

  // Validate what the user wrote, not what the server keeps for itself.
  const { status: _status, ...rest } = obj as KubeContainer & Record<string, unknown>;
  void _status;
  let result;
  try {
    result = validateManifest(rest);
  } catch (err) {
    return invalid(key, obj, undefined, `cannot validate: ${(err as Error).message}`);
  }
  if (!result.ok) {
    const [first, ...more] = result.issues;
    const extra = more.length ? ` (and ${more.map((i) => `${i.field}: ${i.message}`).join('; ')})` : '';
    return invalid(key, obj, first?.field, `${first?.message ?? 'invalid'}${extra}`);
  }
  const desired = normalizeManifest(result.manifest, {
    kind: 'kube',
    uid: obj.metadata.uid ?? '',
    generation: obj.metadata.generation ?? 0,
    resourceVersion: obj.metadata.resourceVersion,
  });

  const cap = ctx.capacity;
  if (cap) {
    const r = desired.spec.resources;
    const over: { res: ResourceName; msg: string }[] = [];
    if (cap.cpuMillis !== undefined && r.cpuMillis !== undefined && r.cpuMillis > cap.cpuMillis)
      over.push({ res: 'cpu', msg: `cpu ${formatCpu(r.cpuMillis)} is more than node ${ctx.node} has (${formatCpu(cap.cpuMillis)})` });
    if (cap.memoryBytes !== undefined && r.memoryBytes !== undefined && r.memoryBytes > cap.memoryBytes)
      over.push({ res: 'memory', msg: `memory ${formatMemory(r.memoryBytes)} is more than node ${ctx.node} has (${formatMemory(cap.memoryBytes)})` });
    if (cap.pids !== undefined && r.pids !== undefined && r.pids > cap.pids)
      over.push({ res: 'pids', msg: `pids ${r.pids} is more than node ${ctx.node} allows (kernel.pid_max ${cap.pids})` });
    if (over.length) {
      return invalid(
        key,
        obj,
        `spec.resources.${over[0]!.res}`,
        `${over.map((o) => o.msg).join('; ')}: the node cannot satisfy it`,
        over.map((o) => o.res),
      );
    }
    const badIP = cap.addresses && desired.spec.ports?.length ? unassignableHostIP(desired, cap.addresses()) : undefined;
    if (badIP) return invalid(key, obj, `spec.ports[${badIP.index}].hostIP`, badIP.message);
  }
  if (ctx.security) {
    const { level, policy, why } = ctx.security;
    const [first, ...more] = checkSecurityLevel(result.manifest.spec, level, policy);
    if (first) {
      const extra = more.length ? ` (and ${more.map((v) => `${v.field}: rule ${v.rule}`).join('; ')})` : '';
      const conv = invalid(key, obj, first.field, `${violationMessage(first, level)}${extra} (${why})`);
      if (conv.kind === 'invalid') Object.assign(conv.problem, { kind: 'forbidden', securityRule: { level, rule: first.rule } });
      return conv;
    }
  }
  return { kind: 'desired', key, desired };
}
