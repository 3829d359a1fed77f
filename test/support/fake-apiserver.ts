/**
 * A TEST DOUBLE of the Kubernetes API server, for the acetate.dev Container resource only (plus
 * core/v1 Events). It is NOT a Kubernetes API server and must never be used outside tests.
 *
 * It is a real HTTP server on 127.0.0.1:<random port>; the real `@kubernetes/client-node` talks to
 * it through a KubeConfig pointing at it (see kubeConfig()). It honours the parts of the real
 * protocol acetate relies on, modelled on k8s.io/apiserver and apiextensions-apiserver:
 *
 * - resourceVersion: one global, monotonically increasing counter, bumped by every write that
 *   changes something (a no-op write neither bumps it nor produces a watch event).
 * - list (`ContainerList` with metadata.resourceVersion) and watch (`?watch=true`): newline
 *   delimited JSON events ADDED / MODIFIED / DELETED / BOOKMARK / ERROR. A watch from
 *   resourceVersion N replays retained history after N; from "" or "0" it first sends the current
 *   objects as ADDED. With a selector, an object moving into the selection is ADDED and moving out
 *   is DELETED, as in the watch cache.
 * - 410 Gone: a watch from a resourceVersion older than the retained history (setHistoryWindow(),
 *   compact()) gets HTTP 200 and an ERROR event whose object is a Status with code 410 / reason
 *   Expired (the watch cache's behaviour), or, with `goneAsHttpStatus`, a plain HTTP 410.
 * - allowWatchBookmarks: BOOKMARK events carry only metadata.resourceVersion (bookmark(), or
 *   periodically with bookmarkIntervalMs). timeoutSeconds closes the watch.
 * - generation: 1 on create, bumped when anything but metadata and status changes, and once when
 *   deletion starts (markAsDeleting), never by status writes.
 * - status subresource: PUT/PATCH …/status change only status; PUT/PATCH of the main resource
 *   ignore status; create drops status.
 * - optimistic concurrency: PUT needs metadata.resourceVersion and gets 409 Conflict when it is
 *   stale; a PATCH whose result carries a different resourceVersion gets 409 too.
 * - finalizers: DELETE of an object with finalizers sets deletionTimestamp (and
 *   deletionGracePeriodSeconds 0) and keeps it; new finalizers cannot be added then (422); the
 *   update that removes the last finalizer emits MODIFIED then DELETED and the object is gone.
 * - PATCH content types as the client sends them: application/merge-patch+json (RFC 7386),
 *   application/json-patch+json (RFC 6902, a failed test op is 422), strategic merge only for core
 *   Events (415 for the custom resource, as for real CRs).
 * - field selectors on metadata.name, metadata.namespace and the CRD's selectableFields
 *   (spec.nodeName by default; `selectableFields: []` behaves like a cluster older than 1.31:
 *   400 "field label not supported"), and equality/set-based label selectors.
 * - core/v1 Events: POST, PATCH, GET (list) in a namespace; involvedObject.namespace must match.
 *
 * Test controls: direct store access (create/update/remove/get), dropWatches(), compact(),
 * setHistoryWindow(), bookmark(), failNext() to inject errors, hold() to stall requests, and a log
 * of every request.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';

export const GROUP = 'acetate.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const PLURAL = 'containers';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type KObject = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FakeApiServerOptions {
  /** Number of watch events retained for watches resuming from a resourceVersion. Default 1000. */
  historyWindow?: number;
  /** Fields usable in field selectors besides metadata.name/namespace. Default ['spec.nodeName']. */
  selectableFields?: string[];
  /** Send BOOKMARK events to watchers that allow them every this many ms. Default off. */
  bookmarkIntervalMs?: number;
  /** Answer a too-old watch with HTTP 410 instead of 200 + ERROR event. Default false. */
  goneAsHttpStatus?: boolean;
  /** Bearer token the server requires; undefined accepts any request. */
  token?: string;
  /**
   * Schema validation of created/updated Containers (e.g. the CRD's, see test/kube/k8s-validate.ts):
   * returns the errors, and a non-empty list is a 422 Invalid like the API server's.
   */
  validate?: (obj: KObject) => string[];
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType?: string;
  body?: unknown;
  status?: number;
}

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: KObject;
  prev?: KObject;
}

interface Watcher {
  res: http.ServerResponse;
  namespace?: string;
  fieldSel: Requirement[];
  labelSel: LabelRequirement[];
  bookmarks: boolean;
  closed: boolean;
  timer?: NodeJS.Timeout;
}

interface Requirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

interface LabelRequirement {
  key: string;
  op: '=' | '!=' | 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

interface Fault {
  method?: string;
  path?: RegExp | string;
  status: number;
  reason?: string;
  message?: string;
  times: number;
}

interface Hold {
  method?: string;
  path?: RegExp | string;
  held: (() => void)[];
  released: boolean;
  waiters: (() => void)[];
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

function k8sTime(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function keyOf(ns: string, name: string): string {
  return `${ns}/${name}`;
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parsePointer(ptr: string): string[] {
  if (ptr === '') return [];
  if (!ptr.startsWith('/')) throw new HttpError(422, 'Invalid', `invalid JSON pointer '${ptr}'`);
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 JSON patch. Throws HttpError 422 on a failed op (as the apiserver does). */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new HttpError(400, 'BadRequest', 'json patch must be a list of operations');
  let root = clone(doc) as Json;
  const fail = (m: string): never => {
    throw new HttpError(422, 'Invalid', m);
  };
  const parentOf = (path: string[]): { parent: Json; last: string } => {
    let node: Json = root;
    for (const seg of path.slice(0, -1)) {
      if (Array.isArray(node)) node = node[Number(seg)] as Json;
      else if (node && typeof node === 'object') node = (node as Record<string, Json>)[seg] as Json;
      else node = undefined as unknown as Json;
      if (node === undefined) fail(`doc is missing path: /${path.join('/')}`);
    }
    return { parent: node, last: path[path.length - 1]! };
  };
  const get = (path: string[]): Json | undefined => {
    let node: Json | undefined = root;
    for (const seg of path) {
      if (Array.isArray(node)) node = node[Number(seg)];
      else if (node && typeof node === 'object') node = (node as Record<string, Json>)[seg];
      else return undefined;
      if (node === undefined) return undefined;
    }
    return node;
  };
  const remove = (path: string[]): Json => {
    const { parent, last } = parentOf(path);
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(i >= 0 && i < parent.length)) fail(`unable to remove nonexistent key: ${last}`);
      return parent.splice(i, 1)[0]!;
    }
    if (!parent || typeof parent !== 'object' || !(last in parent)) fail(`unable to remove nonexistent key: ${last}: missing value`);
    const v = (parent as Record<string, Json>)[last]!;
    delete (parent as Record<string, Json>)[last];
    return v;
  };
  const add = (path: string[], value: Json): void => {
    if (path.length === 0) {
      root = value;
      return;
    }
    const { parent, last } = parentOf(path);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!(i >= 0 && i <= parent.length)) fail(`add operation index out of bounds: ${last}`);
      parent.splice(i, 0, value);
    } else if (parent && typeof parent === 'object') {
      (parent as Record<string, Json>)[last] = value;
    } else fail(`doc is missing path: /${path.join('/')}`);
  };
  for (const raw of ops as Record<string, unknown>[]) {
    const op = raw.op;
    const path = parsePointer(String(raw.path ?? ''));
    switch (op) {
      case 'add':
        add(path, clone(raw.value) as Json);
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        if (get(path) === undefined) fail(`replace operation does not apply: doc is missing key: /${path.join('/')}`);
        remove(path);
        add(path, clone(raw.value) as Json);
        break;
      case 'move': {
        const from = parsePointer(String(raw.from ?? ''));
        const v = remove(from);
        add(path, v);
        break;
      }
      case 'copy': {
        const from = parsePointer(String(raw.from ?? ''));
        const v = get(from);
        if (v === undefined) fail(`copy from nonexistent path`);
        add(path, clone(v!));
        break;
      }
      case 'test':
        if (!deepEqual(get(path) ?? null, raw.value ?? null)) fail(`testing value /${path.join('/')} failed: test failed`);
        break;
      default:
        throw new HttpError(400, 'BadRequest', `unknown json patch op ${String(op)}`);
    }
  }
  return root;
}

function parseFieldSelector(s: string | null, allowed: Set<string>): Requirement[] {
  if (!s) return [];
  const out: Requirement[] = [];
  for (const part of s
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) throw new HttpError(400, 'BadRequest', `invalid field selector: '${part}'`);
    const field = m[1]!.trim();
    if (!allowed.has(field)) throw new HttpError(400, 'BadRequest', `field label not supported: ${field}`);
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() });
  }
  return out;
}

function parseLabelSelector(s: string | null): LabelRequirement[] {
  if (!s) return [];
  const out: LabelRequirement[] = [];
  // split on commas not inside parentheses
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(raw))) {
      out.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) });
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(raw))) {
      out.push({ key: m[1]!, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] });
    } else if ((m = /^!([\w./-]+)$/.exec(raw))) {
      out.push({ key: m[1]!, op: '!exists', values: [] });
    } else if ((m = /^([\w./-]+)$/.exec(raw))) {
      out.push({ key: m[1]!, op: 'exists', values: [] });
    } else throw new HttpError(400, 'BadRequest', `unable to parse requirement: '${raw}'`);
  }
  return out;
}

function fieldValue(obj: KObject, field: string): string {
  let node: unknown = obj;
  for (const seg of field.split('.')) node = node && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
  return node === undefined || node === null ? '' : String(node);
}

function matchesFields(obj: KObject, reqs: Requirement[]): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}

function matchesLabels(obj: KObject, reqs: LabelRequirement[]): boolean {
  const labels: Record<string, string> = obj.metadata?.labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case '=':
        return has && v === r.values[0];
      case '!=':
        return !has || v !== r.values[0];
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

function matchesRoute(req: { method: string; path: string }, m: { method?: string; path?: RegExp | string }): boolean {
  if (m.method && m.method.toUpperCase() !== req.method) return false;
  if (m.path === undefined) return true;
  return typeof m.path === 'string' ? req.path === m.path : m.path.test(req.path);
}

export class FakeApiServer {
  readonly requests: LoggedRequest[] = [];
  private server!: http.Server;
  private port = 0;
  private rv = 1;
  private objects = new Map<string, KObject>();
  private history: HistoryEntry[] = [];
  /** Watches from a resourceVersion below this get 410 Gone. */
  private compactedRv = 1;
  private watchers = new Set<Watcher>();
  /** core/v1 Namespaces (cluster-scoped; their labels carry the pod-security levels), their history and watches, apart from the Containers'. */
  private namespaces = new Map<string, KObject>();
  private nsHistory: HistoryEntry[] = [];
  private nsWatchers = new Set<Watcher>();
  private eventStore = new Map<string, KObject>();
  private faults: Fault[] = [];
  private holds: Hold[] = [];
  private bookmarkTimer?: NodeJS.Timeout;
  private historyWindow: number;
  private selectable: Set<string>;
  private readonly opts: FakeApiServerOptions;
  private sockets = new Set<import('node:net').Socket>();

  private constructor(opts: FakeApiServerOptions) {
    this.opts = opts;
    this.historyWindow = opts.historyWindow ?? 1000;
    this.selectable = new Set(['metadata.name', 'metadata.namespace', ...(opts.selectableFields ?? ['spec.nodeName'])]);
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    s.server = http.createServer((req, res) => {
      // Fire and forget: http does not await a request handler, and handle() answers every failure
      // itself (as an error response), so its promise never rejects.
      void s.handle(req, res);
    });
    s.server.on('connection', (sock) => {
      s.sockets.add(sock);
      sock.on('close', () => s.sockets.delete(sock));
    });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.port = (s.server.address() as AddressInfo).port;
    if (opts.bookmarkIntervalMs) {
      s.bookmarkTimer = setInterval(() => s.bookmark(), opts.bookmarkIntervalMs);
      s.bookmarkTimer.unref();
    }
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig for the real client, pointing at this server. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'fake', token: this.opts.token ?? 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The same as kubeConfig(), as kubeconfig YAML/JSON text (for KUBECONFIG files). */
  kubeConfigText(): string {
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: { token: this.opts.token ?? 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    });
  }

  async close(): Promise<void> {
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    for (const h of this.holds) this.releaseHold(h);
    this.dropWatches({ abrupt: true });
    for (const w of [...this.nsWatchers]) this.closeWatcher(w, true);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- test controls

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  get(namespace: string, name: string): KObject | undefined {
    return clone(this.objects.get(keyOf(namespace, name)));
  }

  list(): KObject[] {
    return [...this.objects.values()].map(clone);
  }

  /** Creates an object directly (as if by kubectl create). Returns the stored object. */
  create(obj: KObject): KObject {
    return clone(this.doCreate(clone(obj), obj.metadata?.namespace ?? 'default'));
  }

  /** Changes an object directly, as a user's update would (status is ignored, generation per spec). */
  update(namespace: string, name: string, mutate: (o: KObject) => void): KObject {
    const cur = this.mustGet(namespace, name);
    const next = clone(cur);
    mutate(next);
    next.metadata.resourceVersion = cur.metadata.resourceVersion;
    return clone(this.doUpdate(namespace, name, next, 'main'));
  }

  /** Changes status directly, as a status writer would. */
  updateStatus(namespace: string, name: string, status: KObject | undefined): KObject {
    const cur = this.mustGet(namespace, name);
    const next = clone(cur);
    next.status = clone(status);
    return clone(this.doUpdate(namespace, name, next, 'status'));
  }

  /** Deletes directly (as kubectl delete): sets deletionTimestamp when finalizers remain. */
  remove(namespace: string, name: string): KObject | undefined {
    return clone(this.doDelete(namespace, name));
  }

  /** Keeps only the last n events for resuming watches; older resourceVersions get 410. */
  setHistoryWindow(n: number): void {
    this.historyWindow = n;
    this.trimHistory();
  }

  /** Forgets all history: any watch resuming from a resourceVersion below the current one gets 410. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Ends every watch connection: abruptly (socket destroyed) or cleanly (response ended). */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) this.closeWatcher(w, opts.abrupt ?? false);
    return n;
  }

  /**
   * Creates or relabels a Namespace (as `kubectl create namespace` / `kubectl label ns`): labels
   * replace the old ones, plus kubernetes.io/metadata.name as the API server adds it.
   */
  setNamespace(name: string, labels: Record<string, string> = {}): KObject {
    const prev = this.namespaces.get(name);
    const obj: KObject = prev
      ? clone(prev)
      : {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name, uid: randomUUID(), creationTimestamp: k8sTime() },
          spec: { finalizers: ['kubernetes'] },
          status: { phase: 'Active' },
        };
    obj.metadata.labels = { ...labels, 'kubernetes.io/metadata.name': name };
    obj.metadata.resourceVersion = this.nextRv();
    this.namespaces.set(name, obj);
    this.recordNamespace(prev ? 'MODIFIED' : 'ADDED', obj);
    return clone(obj);
  }

  /** Deletes a Namespace (at once: no finalization of its content). */
  removeNamespace(name: string): void {
    const prev = this.namespaces.get(name);
    if (!prev) return;
    this.namespaces.delete(name);
    const obj = { ...clone(prev), metadata: { ...prev.metadata, resourceVersion: this.nextRv() } };
    this.recordNamespace('DELETED', obj);
  }

  /** Open namespace watch connections. */
  namespaceWatchCount(): number {
    return this.nsWatchers.size;
  }

  /** Ends every namespace watch (abruptly: socket destroyed, or cleanly). */
  dropNamespaceWatches(opts: { abrupt?: boolean } = {}): void {
    for (const w of [...this.nsWatchers]) this.closeWatcher(w, opts.abrupt ?? false);
  }

  /** Open watch connections. */
  watchCount(): number {
    return this.watchers.size;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watcher that allows bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (w.bookmarks)
        this.send(w, { type: 'BOOKMARK', object: { kind: 'Container', apiVersion: API_VERSION, metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** Sends an ERROR event with the given Status to every watcher (e.g. a 410 Expired). */
  sendWatchError(code: number, reason: string, message: string): void {
    for (const w of [...this.watchers]) {
      this.send(w, { type: 'ERROR', object: this.statusObject(code, reason, message) });
    }
  }

  /** Makes the next `times` requests matching method/path fail with status (a Status body). */
  failNext(match: { method?: string; path?: RegExp | string }, status: number, opts: { times?: number; reason?: string; message?: string } = {}): void {
    this.faults.push({ ...match, status, times: opts.times ?? 1, reason: opts.reason, message: opts.message });
  }

  /** Stalls requests matching method/path until release() is called. */
  hold(match: { method?: string; path?: RegExp | string }): { release(): void; waitHeld(n?: number): Promise<void>; count(): number } {
    const h: Hold = { ...match, held: [], released: false, waiters: [] };
    this.holds.push(h);
    return {
      release: () => this.releaseHold(h),
      count: () => h.held.length,
      waitHeld: (n = 1) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (h.held.length >= n) resolve();
            else h.waiters.push(check);
          };
          check();
        }),
    };
  }

  /** core/v1 Events stored, oldest first. */
  events(namespace?: string): KObject[] {
    return [...this.eventStore.values()].filter((e) => !namespace || e.metadata.namespace === namespace).map(clone);
  }

  /** Requests matching method and path (regexp or exact). */
  requestsTo(method: string, path: RegExp | string): LoggedRequest[] {
    return this.requests.filter((r) => matchesRoute(r, { method, path }));
  }

  // ---------------------------------------------------------------- store

  private mustGet(namespace: string, name: string): KObject {
    const o = this.objects.get(keyOf(namespace, name));
    if (!o) throw new HttpError(404, 'NotFound', `containers.${GROUP} "${name}" not found`, { name, group: GROUP, kind: PLURAL });
    return o;
  }

  private nextRv(): string {
    this.rv += 1;
    return String(this.rv);
  }

  private record(type: HistoryEntry['type'], obj: KObject, prev?: KObject): void {
    const entry: HistoryEntry = { rv: Number(obj.metadata.resourceVersion), type, obj: clone(obj), prev: prev ? clone(prev) : undefined };
    this.history.push(entry);
    this.trimHistory();
    for (const w of [...this.watchers]) this.deliver(w, entry);
  }

  private recordNamespace(type: HistoryEntry['type'], obj: KObject): void {
    const entry: HistoryEntry = { rv: Number(obj.metadata.resourceVersion), type, obj: clone(obj) };
    this.nsHistory.push(entry);
    while (this.nsHistory.length > this.historyWindow) this.nsHistory.shift();
    for (const w of this.nsWatchers) this.send(w, { type, object: entry.obj });
  }

  /** GET /api/v1/namespaces: a NamespaceList, or a watch (from resourceVersion: its history after it; none or 0: ADDED for each). */
  private namespacesListOrWatch(req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams): { code: number; body: unknown } | undefined {
    if (q.get('watch') !== 'true' && q.get('watch') !== '1') {
      const items = [...this.namespaces.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
      return { code: 200, body: { apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: String(this.rv) }, items } };
    }
    const rvParam = q.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (from !== undefined && !Number.isFinite(from)) throw new HttpError(400, 'BadRequest', `invalid resource version '${rvParam}'`);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { res, fieldSel: [], labelSel: [], bookmarks: q.get('allowWatchBookmarks') === 'true', closed: false };
    const oldest = this.nsHistory[0]?.rv;
    if (from !== undefined && oldest !== undefined && from < oldest - 1 && this.nsHistory.length >= this.historyWindow) {
      this.send(w, { type: 'ERROR', object: this.statusObject(410, 'Expired', `too old resource version: ${from} (${oldest})`) });
      res.end();
      return undefined;
    }
    // Namespace watches are tracked apart: closeWatcher removes from the Container set, so remove here too.
    this.nsWatchers.add(w);
    res.on('close', () => {
      this.nsWatchers.delete(w);
      this.closeWatcher(w, false);
    });
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0)
      w.timer = setTimeout(() => {
        this.nsWatchers.delete(w);
        this.closeWatcher(w, false);
      }, timeout * 1000);
    if (from === undefined) for (const o of this.namespaces.values()) this.send(w, { type: 'ADDED', object: o });
    else for (const e of this.nsHistory) if (e.rv > from) this.send(w, { type: e.type, object: e.obj });
    return undefined;
  }

  private trimHistory(): void {
    while (this.history.length > this.historyWindow) {
      const dropped = this.history.shift()!;
      this.compactedRv = dropped.rv;
    }
  }

  private doCreate(body: KObject, namespace: string): KObject {
    if (!body || typeof body !== 'object') throw new HttpError(400, 'BadRequest', 'body must be an object');
    const name = body.metadata?.name;
    if (!name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value: name or generateName is required');
    if (body.metadata.namespace && body.metadata.namespace !== namespace)
      throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    if (body.apiVersion !== API_VERSION || body.kind !== 'Container') throw new HttpError(400, 'BadRequest', `expected ${API_VERSION} Container`);
    this.validateOrThrow(body, name);
    const key = keyOf(namespace, name);
    if (this.objects.has(key)) throw new HttpError(409, 'AlreadyExists', `containers.${GROUP} "${name}" already exists`, { name, group: GROUP, kind: PLURAL });
    const obj = clone(body);
    delete obj.status; // status subresource: create ignores status
    obj.metadata = {
      ...obj.metadata,
      namespace,
      uid: randomUUID(),
      generation: 1,
      creationTimestamp: k8sTime(),
      resourceVersion: this.nextRv(),
    };
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    this.objects.set(key, obj);
    this.record('ADDED', obj);
    return obj;
  }

  /** Applies a full new object to the main resource or to status, with the apiserver's rules. */
  private doUpdate(namespace: string, name: string, body: KObject, target: 'main' | 'status'): KObject {
    const cur = this.mustGet(namespace, name);
    const rv = body?.metadata?.resourceVersion;
    if (rv === undefined || rv === '')
      throw new HttpError(
        422,
        'Invalid',
        `Container.${GROUP} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
      );
    if (String(rv) !== cur.metadata.resourceVersion) throw this.conflict(name);
    if (body.metadata.name !== undefined && body.metadata.name !== name)
      throw new HttpError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    let next: KObject;
    if (target === 'status') {
      next = clone(cur);
      if (body.status === undefined) delete next.status;
      else next.status = clone(body.status);
    } else {
      next = clone(body);
      if (cur.status === undefined) delete next.status;
      else next.status = clone(cur.status);
      // system metadata is not the client's to change
      next.metadata = {
        ...clone(body.metadata),
        name,
        namespace,
        uid: cur.metadata.uid,
        creationTimestamp: cur.metadata.creationTimestamp,
        generation: cur.metadata.generation,
        resourceVersion: cur.metadata.resourceVersion,
      };
      if (cur.metadata.deletionTimestamp) {
        next.metadata.deletionTimestamp = cur.metadata.deletionTimestamp;
        next.metadata.deletionGracePeriodSeconds = cur.metadata.deletionGracePeriodSeconds;
        const before = new Set<string>(cur.metadata.finalizers ?? []);
        const added = (next.metadata.finalizers ?? []).filter((f: string) => !before.has(f));
        if (added.length)
          throw new HttpError(
            422,
            'Invalid',
            `Container.${GROUP} "${name}" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
          );
      } else {
        delete next.metadata.deletionTimestamp;
        delete next.metadata.deletionGracePeriodSeconds;
      }
      if (next.metadata.finalizers && next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
      const strip = (o: KObject): KObject => {
        const c = clone(o);
        delete c.metadata;
        delete c.status;
        return c;
      };
      if (!deepEqual(strip(cur), strip(next))) next.metadata.generation = cur.metadata.generation + 1;
    }
    if (deepEqual(cur, next)) return cur; // no-op: no new resourceVersion, no event
    this.validateOrThrow(next, name);
    next.metadata.resourceVersion = this.nextRv();
    const key = keyOf(namespace, name);
    this.objects.set(key, next);
    this.record('MODIFIED', next, cur);
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      this.objects.delete(key);
      const gone = clone(next);
      gone.metadata.resourceVersion = this.nextRv();
      this.record('DELETED', gone, next);
    }
    return next;
  }

  private doDelete(namespace: string, name: string): KObject {
    const cur = this.mustGet(namespace, name);
    const key = keyOf(namespace, name);
    if (cur.metadata.finalizers?.length) {
      if (cur.metadata.deletionTimestamp) return cur;
      const next = clone(cur);
      next.metadata.generation = cur.metadata.generation + 1; // markAsDeleting
      next.metadata.deletionTimestamp = k8sTime();
      next.metadata.deletionGracePeriodSeconds = 0;
      next.metadata.resourceVersion = this.nextRv();
      this.objects.set(key, next);
      this.record('MODIFIED', next, cur);
      return next;
    }
    this.objects.delete(key);
    const gone = clone(cur);
    gone.metadata.resourceVersion = this.nextRv();
    this.record('DELETED', gone, cur);
    return gone;
  }

  private validateOrThrow(obj: KObject, name: string): void {
    const errs = this.opts.validate?.(obj) ?? [];
    if (errs.length) throw new HttpError(422, 'Invalid', `Container.${GROUP} "${name}" is invalid: ${errs.join(', ')}`);
  }

  private conflict(name: string): HttpError {
    return new HttpError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on containers.${GROUP} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, group: GROUP, kind: PLURAL },
    );
  }

  // ---------------------------------------------------------------- watch

  private send(w: Watcher, ev: unknown): void {
    if (w.closed) return;
    w.res.write(`${JSON.stringify(ev)}\n`);
  }

  private closeWatcher(w: Watcher, abrupt: boolean): void {
    if (w.closed) return;
    w.closed = true;
    if (w.timer) clearTimeout(w.timer);
    this.watchers.delete(w);
    if (abrupt) w.res.socket?.destroy();
    else w.res.end();
  }

  private selected(w: Pick<Watcher, 'namespace' | 'fieldSel' | 'labelSel'>, obj: KObject | undefined): boolean {
    if (!obj) return false;
    if (w.namespace && obj.metadata.namespace !== w.namespace) return false;
    return matchesFields(obj, w.fieldSel) && matchesLabels(obj, w.labelSel);
  }

  private deliver(w: Watcher, e: HistoryEntry): void {
    const now = this.selected(w, e.obj);
    const before = this.selected(w, e.prev);
    if (e.type === 'DELETED') {
      if (before || now) this.send(w, { type: 'DELETED', object: e.obj });
      return;
    }
    if (e.type === 'ADDED') {
      if (now) this.send(w, { type: 'ADDED', object: e.obj });
      return;
    }
    if (now && before) this.send(w, { type: 'MODIFIED', object: e.obj });
    else if (now) this.send(w, { type: 'ADDED', object: e.obj });
    else if (before) this.send(w, { type: 'DELETED', object: e.obj });
  }

  private statusObject(code: number, reason: string, message: string, details?: Record<string, unknown>): KObject {
    const s: KObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
    if (details) s.details = details;
    return s;
  }

  private startWatch(req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams, namespace: string | undefined): void {
    const fieldSel = parseFieldSelector(q.get('fieldSelector'), this.selectable);
    const labelSel = parseLabelSelector(q.get('labelSelector'));
    const rvParam = q.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (from !== undefined && !Number.isFinite(from)) throw new HttpError(400, 'BadRequest', `invalid resource version '${rvParam}'`);
    const expired = from !== undefined && from < this.compactedRv;
    if (expired && this.opts.goneAsHttpStatus) {
      throw new HttpError(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { res, namespace, fieldSel, labelSel, bookmarks: q.get('allowWatchBookmarks') === 'true', closed: false };
    if (expired) {
      this.send(w, { type: 'ERROR', object: this.statusObject(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) });
      res.end();
      return;
    }
    this.watchers.add(w);
    res.on('close', () => this.closeWatcher(w, false));
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timer = setTimeout(() => this.closeWatcher(w, false), timeout * 1000);
    if (from === undefined) {
      const objs = [...this.objects.values()].filter((o) => this.selected(w, o));
      objs.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
      for (const o of objs) this.send(w, { type: 'ADDED', object: o });
    } else {
      for (const e of this.history) if (e.rv > from) this.deliver(w, e);
    }
  }

  // ---------------------------------------------------------------- HTTP

  private async readBody(req: http.IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(400, 'BadRequest', 'body is not JSON');
    }
  }

  private reply(res: http.ServerResponse, code: number, body: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private releaseHold(h: Hold): void {
    h.released = true;
    const held = h.held.splice(0);
    for (const go of held) go();
    this.holds = this.holds.filter((x) => x !== h);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', this.url);
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    const entry: LoggedRequest = { method, path: u.pathname, query: u.searchParams, contentType };
    this.requests.push(entry);
    try {
      if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
        throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      }
      const body = method === 'GET' || method === 'DELETE' ? await this.readBody(req).catch(() => undefined) : await this.readBody(req);
      entry.body = body;
      const hold = this.holds.find((h) => !h.released && matchesRoute(entry, h));
      if (hold) {
        await new Promise<void>((resolve) => {
          hold.held.push(resolve);
          for (const w of hold.waiters.splice(0)) w();
        });
      }
      const fault = this.faults.find((f) => f.times > 0 && matchesRoute(entry, f));
      if (fault) {
        fault.times -= 1;
        if (fault.times === 0) this.faults = this.faults.filter((f) => f !== fault);
        throw new HttpError(
          fault.status,
          fault.reason ?? http.STATUS_CODES[fault.status]?.replace(/\s/g, '') ?? 'Unknown',
          fault.message ?? `injected ${fault.status}`,
        );
      }
      const out = this.route(req, res, method, u, body, contentType);
      if (out !== undefined) {
        entry.status = out.code;
        this.reply(res, out.code, out.body);
      } else entry.status = 200;
    } catch (err) {
      if (err instanceof HttpError) {
        entry.status = err.code;
        this.reply(res, err.code, this.statusObject(err.code, err.reason, err.message, err.details));
      } else {
        entry.status = 500;
        this.reply(res, 500, this.statusObject(500, 'InternalError', String(err)));
      }
    }
  }

  /** Returns the response, or undefined when the handler streams (watch). */
  private route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    u: URL,
    body: unknown,
    contentType: string | undefined,
  ): { code: number; body: unknown } | undefined {
    const p = u.pathname;
    const q = u.searchParams;
    const base = `/apis/${GROUP}/${VERSION}`;
    let m: RegExpExecArray | null;

    // core/v1 namespaces
    if (p === '/api/v1/namespaces') {
      if (method !== 'GET') throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
      return this.namespacesListOrWatch(req, res, q);
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(p)) && method === 'GET') {
      const ns = this.namespaces.get(m[1]!);
      if (!ns) throw new HttpError(404, 'NotFound', `namespaces "${m[1]}" not found`, { name: m[1], kind: 'namespaces' });
      return { code: 200, body: ns };
    }
    // core/v1 events
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/.exec(p))) {
      return this.routeEvents(method, m[1]!, m[2], body, contentType);
    }
    if (p === `${base}/${PLURAL}`) {
      if (method !== 'GET') throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
      return this.listOrWatch(req, res, q, undefined);
    }
    if ((m = new RegExp(`^${base}/namespaces/([^/]+)/${PLURAL}$`).exec(p))) {
      const ns = m[1]!;
      if (method === 'GET') return this.listOrWatch(req, res, q, ns);
      if (method === 'POST') return { code: 201, body: this.doCreate(body as KObject, ns) };
      throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
    }
    if ((m = new RegExp(`^${base}/namespaces/([^/]+)/${PLURAL}/([^/]+)(/status)?$`).exec(p))) {
      const ns = m[1]!;
      const name = m[2]!;
      const target = m[3] ? 'status' : 'main';
      switch (method) {
        case 'GET':
          return { code: 200, body: this.mustGet(ns, name) };
        case 'PUT':
          return { code: 200, body: this.doUpdate(ns, name, body as KObject, target) };
        case 'PATCH': {
          const cur = this.mustGet(ns, name);
          let patched: KObject;
          if (contentType === 'application/merge-patch+json') patched = mergePatch(clone(cur), body) as KObject;
          else if (contentType === 'application/json-patch+json') patched = jsonPatch(cur, body) as KObject;
          else
            throw new HttpError(
              415,
              'UnsupportedMediaType',
              `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
            );
          if (!patched || typeof patched !== 'object' || !patched.metadata) throw new HttpError(422, 'Invalid', 'patch removed metadata');
          if (patched.metadata.resourceVersion !== cur.metadata.resourceVersion) {
            if (patched.metadata.resourceVersion === undefined || patched.metadata.resourceVersion === null)
              patched.metadata.resourceVersion = cur.metadata.resourceVersion;
            else throw this.conflict(name);
          }
          return { code: 200, body: this.doUpdate(ns, name, patched, target) };
        }
        case 'DELETE':
          if (target === 'status') throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
          {
            const out = this.doDelete(ns, name);
            if (this.objects.has(keyOf(ns, name))) return { code: 200, body: out };
            return {
              code: 200,
              body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: GROUP, kind: PLURAL, uid: out.metadata.uid } },
            };
          }
        default:
          throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
      }
    }
    throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${method} ${p})`);
  }

  private listOrWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    q: URLSearchParams,
    ns: string | undefined,
  ): { code: number; body: unknown } | undefined {
    if (q.get('watch') === 'true' || q.get('watch') === '1') {
      this.startWatch(req, res, q, ns);
      return undefined;
    }
    const fieldSel = parseFieldSelector(q.get('fieldSelector'), this.selectable);
    const labelSel = parseLabelSelector(q.get('labelSelector'));
    const items = [...this.objects.values()]
      .filter((o) => this.selected({ namespace: ns, fieldSel, labelSel }, o))
      .sort((a, b) => (keyOf(a.metadata.namespace, a.metadata.name) < keyOf(b.metadata.namespace, b.metadata.name) ? -1 : 1));
    return {
      code: 200,
      body: { apiVersion: API_VERSION, kind: 'ContainerList', metadata: { resourceVersion: String(this.rv) }, items },
    };
  }

  private routeEvents(method: string, ns: string, name: string | undefined, body: unknown, contentType: string | undefined): { code: number; body: unknown } {
    if (method === 'GET' && !name) {
      return { code: 200, body: { apiVersion: 'v1', kind: 'EventList', metadata: { resourceVersion: String(this.rv) }, items: this.events(ns) } };
    }
    if (method === 'POST' && !name) {
      const ev = clone(body as KObject);
      if (!ev?.metadata?.name) throw new HttpError(422, 'Invalid', 'Event "" is invalid: metadata.name: Required value');
      if (ev.metadata.namespace && ev.metadata.namespace !== ns)
        throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      if (ev.involvedObject?.namespace && ev.involvedObject.namespace !== ns)
        throw new HttpError(
          422,
          'Invalid',
          `Event "${ev.metadata.name}" is invalid: involvedObject.namespace: Invalid value: "${ev.involvedObject.namespace}": does not match event.namespace`,
        );
      const key = keyOf(ns, ev.metadata.name);
      if (this.eventStore.has(key)) throw new HttpError(409, 'AlreadyExists', `events "${ev.metadata.name}" already exists`);
      ev.metadata = { ...ev.metadata, namespace: ns, uid: randomUUID(), resourceVersion: this.nextRv(), creationTimestamp: k8sTime() };
      this.eventStore.set(key, ev);
      return { code: 201, body: ev };
    }
    if (name && (method === 'PATCH' || method === 'GET')) {
      const cur = this.eventStore.get(keyOf(ns, name));
      if (!cur) throw new HttpError(404, 'NotFound', `events "${name}" not found`);
      if (method === 'GET') return { code: 200, body: cur };
      let next: KObject;
      if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json')
        next = mergePatch(clone(cur), body) as KObject;
      else if (contentType === 'application/json-patch+json') next = jsonPatch(cur, body) as KObject;
      else throw new HttpError(415, 'UnsupportedMediaType', 'unsupported patch type');
      next.metadata.resourceVersion = this.nextRv();
      this.eventStore.set(keyOf(ns, name), next);
      return { code: 200, body: next };
    }
    throw new HttpError(405, 'MethodNotAllowed', 'method not allowed');
  }
}
