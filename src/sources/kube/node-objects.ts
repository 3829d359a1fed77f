/**
 * The informer's objects seen as this node's desired state: each object converted once per
 * resourceVersion (desired, invalid, terminating, foreign), the snapshot built from them, and a
 * fingerprint per key that says whether a change of the object matters to the loop (a status
 * write changes only resourceVersion and status: it does not).
 */
import type { DesiredContainer } from '../../api/types.js';
import { canonicalJson } from '../../api/hash.js';
import type { DesiredSnapshot, SourceProblem } from '../../contracts/source.js';
import type { KubeContainer } from './client.js';
import { convertObject, originOfKey, type Conversion, type NodeCapacity } from './desired.js';
import { hasFinalizer } from './finalizer.js';
import type { KeyVerdict } from './status-writer.js';
import { checkSecurityLevel, type NodeSecurityPolicy, type SecurityLevel, type SecurityViolation } from '../../policy/levels.js';
import type { NamespaceLevels } from '../../policy/namespace-labels.js';

interface Memo {
  rv: string | undefined;
  /** The namespace's levels the conversion was made under (a label change converts again). */
  levels: string;
  conv: Conversion;
}

/** The security levels of a namespace, and what the node allows (see namespace-labels.ts). */
export interface SecurityContextOf {
  levels: NamespaceLevels;
  policy: NodeSecurityPolicy;
  /** Where the enforced level comes from, for messages. */
  why: string;
}

export interface NodeObjectsOptions {
  node: string;
  capacity: NodeCapacity | false;
  /** The informer's copies. */
  get: (key: string) => KubeContainer | undefined;
  list: () => KubeContainer[];
  /** Why adding the finalizer to key failed last, if it did. */
  addError: (key: string) => string | undefined;
  /** The levels of a namespace; absent: levels are not checked. */
  security?: (namespace: string) => SecurityContextOf;
  /** Told, at each new conversion, what the warn and audit levels would refuse (nothing when they allow it). */
  onAdvisory?: (key: string, mode: 'warn' | 'audit', level: SecurityLevel, violations: SecurityViolation[]) => void;
}

export class NodeObjects {
  private readonly memo = new Map<string, Memo>();

  constructor(private readonly opts: NodeObjectsOptions) {}

  convert(obj: KubeContainer): Conversion {
    const namespace = obj.metadata.namespace ?? 'default';
    const key = `${namespace}/${obj.metadata.name}`;
    const sec = this.opts.security?.(namespace);
    const levels = sec ? `${sec.levels.enforce}|${sec.levels.warn}|${sec.levels.audit}|${sec.why}` : '';
    const m = this.memo.get(key);
    if (m && m.rv === obj.metadata.resourceVersion && obj.metadata.resourceVersion !== undefined && m.levels === levels) return m.conv;
    const conv = convertObject(obj, {
      node: this.opts.node,
      capacity: this.opts.capacity,
      ...(sec ? { security: { level: sec.levels.enforce, policy: sec.policy, why: sec.why } } : {}),
    });
    this.memo.set(key, { rv: obj.metadata.resourceVersion, levels, conv });
    if (sec && conv.kind === 'desired' && this.opts.onAdvisory) {
      for (const mode of ['warn', 'audit'] as const) {
        const found = checkSecurityLevel(obj.spec, sec.levels[mode], sec.policy);
        if (found.length) this.opts.onAdvisory(key, mode, sec.levels[mode], found);
      }
    }
    return conv;
  }

  /** Forgets conversions of keys not in live. */
  retain(live: Set<string>): void {
    for (const k of [...this.memo.keys()]) if (!live.has(k)) this.memo.delete(k);
  }

  forget(key: string): void {
    this.memo.delete(key);
  }

  /** Whether obj is this node's to take: not another node's, even when invalid. */
  isOurs(obj: KubeContainer): boolean {
    const conv = this.convert(obj);
    if (conv.kind === 'foreign') return false;
    if (conv.kind === 'invalid') return (obj.spec as { nodeName?: unknown } | undefined)?.nodeName === this.opts.node;
    return true;
  }

  /** Keys of objects being deleted that still carry acetate's finalizer: the loop must look at them. */
  terminatingKeys(): string[] {
    return this.opts
      .list()
      .filter((o) => o.metadata.deletionTimestamp && hasFinalizer(o) && this.isOurs(o))
      .map((o) => this.convert(o).key);
  }

  /** What the source rejected about key, for the status writer. */
  verdict(key: string): KeyVerdict | undefined {
    const obj = this.opts.get(key);
    if (!obj) return undefined;
    const conv = this.convert(obj);
    if (conv.kind !== 'invalid') return undefined;
    return { rejectedGeneration: conv.generation, infeasible: conv.infeasible, message: conv.problem.message };
  }

  /** Changes when what the loop should do about key may have changed. */
  fingerprint(key: string): string {
    const obj = this.opts.get(key);
    if (!obj) return 'gone';
    const conv = this.convert(obj);
    const fin = hasFinalizer(obj) ? 'F' : '-';
    const err = this.opts.addError(key) ?? '';
    switch (conv.kind) {
      case 'desired':
        return `desired|${fin}|${obj.metadata.uid}|${conv.desired.source.kind === 'kube' ? conv.desired.source.generation : ''}|${canonicalJson(conv.desired.spec)}|${err}`;
      case 'invalid':
        return `invalid|${fin}|${conv.generation}|${conv.problem.field}|${conv.problem.message}`;
      case 'terminating':
        return `terminating`;
      case 'foreign':
        return `foreign|${conv.nodeName}`;
    }
  }

  /**
   * containers: valid objects carrying the finalizer; protectedKeys: invalid or infeasible objects
   * (a problem each) and objects still waiting for their finalizer; terminating and foreign
   * objects are in neither.
   */
  snapshot(complete: boolean): DesiredSnapshot {
    const containers = new Map<string, DesiredContainer>();
    const protectedKeys = new Set<string>();
    const problems: SourceProblem[] = [];
    for (const obj of this.opts.list()) {
      const conv = this.convert(obj);
      switch (conv.kind) {
        case 'desired': {
          if (hasFinalizer(obj)) {
            containers.set(conv.key, conv.desired);
            break;
          }
          protectedKeys.add(conv.key);
          const err = this.opts.addError(conv.key);
          if (err) problems.push({ origin: originOfKey(conv.key), message: err, keys: [conv.key], kind: 'unreadable' });
          break;
        }
        case 'invalid':
          protectedKeys.add(conv.key);
          problems.push(conv.problem);
          break;
        case 'terminating':
        case 'foreign':
          break;
      }
    }
    return { containers, protectedKeys, problems, complete };
  }
}
