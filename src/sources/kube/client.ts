/**
 * The few Kubernetes API calls acetate makes, over the real @kubernetes/client-node (1.x):
 * list/watch Containers across namespaces, read one, write its status through the status
 * subresource, patch its metadata (finalizers) and create/patch core/v1 Events.
 *
 * Everything else in src/sources/kube talks to the KubeApi interface, so errors arrive in one
 * shape (KubeApiError: HTTP code, Kubernetes reason, message) whatever the client threw.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Observable,
  PatchStrategy,
  Watch,
  type CoreV1Event,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type { ContainerStatus, ObjectMeta } from '../../api/types.js';
import { GROUP, PLURAL, VERSION } from './constants.js';

/** A Container object as the API server returns it; spec is not validated yet. */
export interface KubeContainer {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta & { deletionGracePeriodSeconds?: number };
  spec?: unknown;
  status?: ContainerStatus;
}

/** A Namespace as acetate reads it: its name and labels (the pod-security.kubernetes.io levels). */
export interface KubeNamespace {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
}

export interface Selector {
  fieldSelector?: string;
  labelSelector?: string;
}

export interface ContainerList {
  items: KubeContainer[];
  resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandle {
  /** Ends the watch; its onDone is still called (with an abort error), callers ignore it. */
  abort(): void;
}

export interface WatchOptions extends Selector {
  resourceVersion: string;
  timeoutSeconds?: number;
}

/** A Kubernetes API failure: code 0 for network errors and timeouts (no HTTP answer). */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeApiError';
  }
}

export interface KubeApi {
  listContainers(sel: Selector): Promise<ContainerList>;
  /**
   * Watches Containers from resourceVersion (with bookmarks). onEvent gets every decoded event;
   * onDone is called once when the watch ends: null for a clean end, else the error.
   */
  watchContainers(
    opts: WatchOptions,
    onEvent: (type: WatchEventType, obj: Record<string, unknown>) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
  getContainer(namespace: string, name: string): Promise<KubeContainer | undefined>;
  /** PUT …/status: the object's resourceVersion is the precondition (409 when stale). */
  replaceContainerStatus(obj: KubeContainer): Promise<KubeContainer>;
  /** PATCH the main resource; a merge patch may carry metadata.resourceVersion as a precondition. */
  patchContainer(namespace: string, name: string, patch: unknown, type: 'merge' | 'json'): Promise<KubeContainer>;
  createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event>;
  patchEvent(namespace: string, name: string, patch: Record<string, unknown>): Promise<CoreV1Event>;
  /** GET /api/v1/namespaces (their labels carry the security levels). */
  listNamespaces(): Promise<{ items: KubeNamespace[]; resourceVersion: string }>;
  /** Watches Namespaces from resourceVersion (with bookmarks); as watchContainers. */
  watchNamespaces(
    opts: { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (type: WatchEventType, obj: Record<string, unknown>) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
}

function bodyOf(err: ApiException<unknown>): { reason?: string; message?: string } {
  let b: unknown = err.body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return { message: b as string };
    }
  }
  if (b && typeof b === 'object') {
    const o = b as Record<string, unknown>;
    return { reason: typeof o.reason === 'string' ? o.reason : undefined, message: typeof o.message === 'string' ? o.message : undefined };
  }
  return {};
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** Normalises whatever the client threw into a KubeApiError. */
export function toKubeApiError(err: unknown, what: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof ApiException) {
    const { reason, message } = bodyOf(err as ApiException<unknown>);
    const code = Number(err.code);
    return new KubeApiError(code, reason ?? REASONS[code] ?? 'Unknown', `${what}: ${message ?? `HTTP ${code}`}`, { cause: err });
  }
  const e = err as { statusCode?: number; code?: unknown; message?: string; name?: string; type?: string };
  if (typeof e?.statusCode === 'number') {
    return new KubeApiError(e.statusCode, REASONS[e.statusCode] ?? 'Unknown', `${what}: HTTP ${e.statusCode} ${e.message ?? ''}`.trim(), { cause: err });
  }
  if (e?.name === 'AbortError' || e?.type === 'aborted') return new KubeApiError(0, 'Timeout', `${what}: request timed out or was aborted`, { cause: err });
  return new KubeApiError(0, 'NetworkError', `${what}: ${e?.message ?? String(err)}`, { cause: err });
}

export function isApiError(err: unknown, code: number): boolean {
  return err instanceof KubeApiError ? err.code === code : false;
}

/**
 * A request middleware. The object-parameter API of client-node 1.x hands options straight to its
 * Observable API, so middleware must return the client's Observable (as its setHeaderOptions does).
 */
function middleware(pre: (ctx: RequestContext) => void): ObservableMiddleware {
  return {
    pre: (ctx: RequestContext) => {
      pre(ctx);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
  };
}

export interface KubeApiOptions {
  /** Timeout of every request but watches. Default 30 s. */
  requestTimeoutMs?: number;
}

/** The KubeApi over @kubernetes/client-node. */
export function createKubeApi(kc: KubeConfig, opts: KubeApiOptions = {}): KubeApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const watch = new Watch(kc);
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const timeout = middleware((ctx) => ctx.setSignal(AbortSignal.timeout(timeoutMs) as unknown as Parameters<RequestContext['setSignal']>[0]));
  const withTimeout = { middleware: [timeout], middlewareMergeStrategy: 'append' as const };
  const contentType = (ct: string) => ({
    middleware: [timeout, middleware((ctx) => ctx.setHeaderParam('Content-Type', ct))],
    middlewareMergeStrategy: 'append' as const,
  });
  const base = { group: GROUP, version: VERSION, plural: PLURAL };
  /** One watch of `path`: its end (or a failure to start it) reported once to onDone, as a KubeApiError naming `what`. */
  const watchPath = async (
    path: string,
    params: Record<string, string | number | boolean>,
    what: string,
    onEvent: (type: WatchEventType, obj: Record<string, unknown>) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle> => {
    let done = false;
    const finish = (err: unknown): void => {
      if (done) return;
      done = true;
      onDone(err ? toKubeApiError(err, what) : null);
    };
    try {
      const controller = await watch.watch(
        path,
        params,
        (type: string, obj: unknown) => onEvent(type as WatchEventType, (obj ?? {}) as Record<string, unknown>),
        finish,
      );
      return { abort: () => controller.abort() };
    } catch (err) {
      finish(err);
      return { abort: () => undefined };
    }
  };

  return {
    async listContainers(sel) {
      try {
        const list = (await custom.listCustomObjectForAllNamespaces(
          { ...base, fieldSelector: sel.fieldSelector, labelSelector: sel.labelSelector },
          withTimeout,
        )) as { items?: KubeContainer[]; metadata?: { resourceVersion?: string } };
        return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? '' };
      } catch (err) {
        throw toKubeApiError(err, 'list containers');
      }
    },

    watchContainers(o, onEvent, onDone) {
      const params: Record<string, string | number | boolean> = { allowWatchBookmarks: true, resourceVersion: o.resourceVersion };
      if (o.timeoutSeconds) params.timeoutSeconds = o.timeoutSeconds;
      if (o.fieldSelector) params.fieldSelector = o.fieldSelector;
      if (o.labelSelector) params.labelSelector = o.labelSelector;
      return watchPath(`/apis/${GROUP}/${VERSION}/${PLURAL}`, params, 'watch containers', onEvent, onDone);
    },

    async getContainer(namespace, name) {
      try {
        return (await custom.getNamespacedCustomObject({ ...base, namespace, name }, withTimeout)) as KubeContainer;
      } catch (err) {
        const e = toKubeApiError(err, `get container ${namespace}/${name}`);
        if (e.code === 404) return undefined;
        throw e;
      }
    },

    async replaceContainerStatus(obj) {
      const { namespace = 'default', name } = obj.metadata;
      try {
        return (await custom.replaceNamespacedCustomObjectStatus({ ...base, namespace, name, body: obj }, withTimeout)) as KubeContainer;
      } catch (err) {
        throw toKubeApiError(err, `update status of container ${namespace}/${name}`);
      }
    },

    async patchContainer(namespace, name, patch, type) {
      try {
        return (await custom.patchNamespacedCustomObject(
          { ...base, namespace, name, body: patch },
          contentType(type === 'merge' ? PatchStrategy.MergePatch : PatchStrategy.JsonPatch),
        )) as KubeContainer;
      } catch (err) {
        throw toKubeApiError(err, `patch container ${namespace}/${name}`);
      }
    },

    async createEvent(namespace, event) {
      try {
        return await core.createNamespacedEvent({ namespace, body: event }, withTimeout);
      } catch (err) {
        throw toKubeApiError(err, `create event in ${namespace}`);
      }
    },

    async listNamespaces() {
      try {
        const list = await core.listNamespace({}, withTimeout);
        return {
          items: (list.items ?? []).map((n) => ({
            metadata: { name: n.metadata?.name ?? '', resourceVersion: n.metadata?.resourceVersion, labels: n.metadata?.labels ?? {} },
          })),
          resourceVersion: list.metadata?.resourceVersion ?? '',
        };
      } catch (err) {
        throw toKubeApiError(err, 'list namespaces');
      }
    },

    watchNamespaces(o, onEvent, onDone) {
      const params: Record<string, string | number | boolean> = { allowWatchBookmarks: true, resourceVersion: o.resourceVersion };
      if (o.timeoutSeconds) params.timeoutSeconds = o.timeoutSeconds;
      return watchPath('/api/v1/namespaces', params, 'watch namespaces', onEvent, onDone);
    },

    async patchEvent(namespace, name, patch) {
      try {
        return await core.patchNamespacedEvent({ namespace, name, body: patch }, contentType(PatchStrategy.MergePatch));
      } catch (err) {
        throw toKubeApiError(err, `patch event ${namespace}/${name}`);
      }
    },
  };
}
