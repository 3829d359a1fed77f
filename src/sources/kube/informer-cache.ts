/**
 * The informer's copy of this node's Container objects and the resourceVersion it is current to:
 * replaced whole by a list, changed by watch events (BOOKMARKs only move the resourceVersion).
 */
import { containerKey } from '../../api/types.js';
import type { KubeContainer } from './client.js';

export function keyOfObject(obj: KubeContainer): string {
  return containerKey(obj.metadata.namespace ?? 'default', obj.metadata.name);
}

export type CacheChange = { kind: 'upsert'; key: string; obj: KubeContainer; prev?: KubeContainer } | { kind: 'delete'; key: string; obj: KubeContainer };

export class InformerCache {
  private objects = new Map<string, KubeContainer>();
  private rv = '';

  get(key: string): KubeContainer | undefined {
    return this.objects.get(key);
  }

  list(): KubeContainer[] {
    return [...this.objects.values()];
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  get size(): number {
    return this.objects.size;
  }

  resourceVersion(): string {
    return this.rv;
  }

  /** Replaces everything by a list's items; returns every key that was or is now there. */
  replace(items: KubeContainer[], resourceVersion: string): string[] {
    const next = new Map<string, KubeContainer>();
    for (const obj of items) next.set(keyOfObject(obj), obj);
    const keys = new Set([...this.objects.keys(), ...next.keys()]);
    this.objects = next;
    this.rv = resourceVersion;
    return [...keys];
  }

  /** Applies one watch event; the change to tell listeners about, if any. */
  apply(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK', obj: KubeContainer): CacheChange | undefined {
    const rv = obj.metadata.resourceVersion;
    if (rv) this.rv = rv;
    if (type === 'BOOKMARK') return undefined;
    const key = keyOfObject(obj);
    if (type === 'DELETED') {
      this.objects.delete(key);
      return { kind: 'delete', key, obj };
    }
    const prev = this.objects.get(key);
    this.objects.set(key, obj);
    return { kind: 'upsert', key, obj, prev };
  }
}
