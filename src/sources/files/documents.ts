/**
 * Which parts of a parsed YAML document are Containers, the way kubectl reads them: a Container
 * document, or the `items` of a `List` (what `kubectl get -o yaml` prints) or of a
 * `ContainerList` (what the API returns). Anything else is reported, never silently dropped: a
 * document that looks like a Container under another apiVersion is an error (so the container
 * it meant is left alone, not destroyed), any other kind a warning.
 */
import { formatCpu, formatMemory } from '../../api/quantity.js';
import { API_GROUP, API_VERSION, KIND, type DesiredContainer, type ResourceName } from '../../api/types.js';
import type { SourceProblem } from '../../contracts/source.js';
import type { NodeCapacity } from '../kube/desired.js';
import type { PathSegment } from '../../api/validation-issue.js';
import type { YamlDocument } from './yaml-documents.js';

/** A Container candidate inside a document: its value and where it sits (`['items', 3]`, or `[]`). */
export interface ContainerDocument {
  value: unknown;
  at: PathSegment[];
}

interface Sink {
  problems: SourceProblem[];
  warnings: SourceProblem[];
  ignoredDocuments: number;
}

const LIST_KINDS = new Set(['List', `${KIND}List`]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function keysOf(v: Record<string, unknown>): string[] {
  const meta = isRecord(v.metadata) ? v.metadata : undefined;
  const name = typeof meta?.name === 'string' ? meta.name : undefined;
  const namespace = typeof meta?.namespace === 'string' ? meta.namespace : 'default';
  return name ? [`${namespace}/${name}`] : [];
}

function describe(v: Record<string, unknown>): string {
  const name = isRecord(v.metadata) && typeof v.metadata.name === 'string' ? ` '${v.metadata.name}'` : '';
  return `${String(v.apiVersion)} ${String(v.kind)}${name}`;
}

/**
 * The Container candidates of one document; what is skipped goes to sink as a warning, what
 * cannot be a valid Container list to sink as an error. Candidates are validated by the caller.
 */
export function containerDocuments(doc: YamlDocument, file: string, sink: Sink): ContainerDocument[] {
  const v = doc.value;
  if (v === null || v === undefined) return [];
  if (!isRecord(v) || typeof v.kind !== 'string' || typeof v.apiVersion !== 'string') return [{ value: v, at: [] }];
  const ours = v.apiVersion.startsWith(`${API_GROUP}/`);
  if (LIST_KINDS.has(v.kind) && (v.kind === 'List' ? v.apiVersion === 'v1' || ours : ours)) {
    if (!Array.isArray(v.items)) {
      sink.problems.push({
        origin: file,
        kind: 'invalid',
        keys: [],
        line: doc.lineOf(['items']),
        field: 'items',
        message: `a ${v.kind} needs items: a list of Containers`,
      });
      return [];
    }
    const out: ContainerDocument[] = [];
    v.items.forEach((item, i) => {
      const at: PathSegment[] = ['items', i];
      if (isRecord(item) && typeof item.apiVersion === 'string' && typeof item.kind === 'string' && !isContainerLike(item)) {
        skip(item, doc.lineOf(at), `items[${i}]`, file, sink);
        return;
      }
      out.push({ value: item, at });
    });
    return out;
  }
  if (ours || v.kind === KIND) {
    // Ours (validated: a wrong kind is an error), or a Container under another apiVersion: an
    // error too, since skipping it would destroy the container it declares.
    if (!ours) {
      sink.problems.push({
        origin: file,
        kind: 'invalid',
        keys: keysOf(v),
        line: doc.lineOf(['apiVersion']),
        field: 'apiVersion',
        message: `'${v.apiVersion}' is not ${API_VERSION}: a Container of another API is not understood (its container is left as it is)`,
      });
      return [];
    }
    return [{ value: v, at: [] }];
  }
  skip(v, doc.line, undefined, file, sink);
  return [];
}

function isContainerLike(v: Record<string, unknown>): boolean {
  return (typeof v.apiVersion === 'string' && v.apiVersion.startsWith(`${API_GROUP}/`)) || v.kind === KIND;
}

function skip(v: Record<string, unknown>, line: number, field: string | undefined, file: string, sink: Sink): void {
  sink.ignoredDocuments++;
  const w: SourceProblem = { origin: file, kind: 'skipped', keys: [], line, message: `${describe(v)} is not a ${KIND} (${API_VERSION}): skipped` };
  if (field) w.field = field;
  sink.warnings.push(w);
}

/** The first resource a container asks more of than the node has (Kubernetes mode refuses the same). */
export function beyondCapacity(d: DesiredContainer, cap: NodeCapacity): { resource: ResourceName; message: string } | undefined {
  const r = d.spec.resources;
  if (cap.cpuMillis !== undefined && r.cpuMillis !== undefined && r.cpuMillis > cap.cpuMillis) {
    return { resource: 'cpu', message: `cpu ${formatCpu(r.cpuMillis)} is more than this node has (${formatCpu(cap.cpuMillis)}): the node cannot satisfy it` };
  }
  if (cap.memoryBytes !== undefined && r.memoryBytes !== undefined && r.memoryBytes > cap.memoryBytes) {
    return {
      resource: 'memory',
      message: `memory ${formatMemory(r.memoryBytes)} is more than this node has (${formatMemory(cap.memoryBytes)}): the node cannot satisfy it`,
    };
  }
  if (cap.pids !== undefined && r.pids !== undefined && r.pids > cap.pids) {
    return { resource: 'pids', message: `pids ${r.pids} is more than this node allows (kernel.pid_max ${cap.pids})` };
  }
  return undefined;
}
