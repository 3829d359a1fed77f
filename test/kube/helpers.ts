/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/** Shared bits of the Kubernetes tests: Container objects, a started fake API server, a quiet source. */
import { FakeApiServer, type FakeApiServerOptions, type KObject } from '../support/fake-apiserver.js';
import { createKubeApi, type KubeApi } from '../../src/sources/kube/client.js';
import { WorkQueue, requeueFor, type Decision, type Requeue } from '../../src/controller/queue.js';
import { FakeClock } from '../../src/contracts/clock.js';

export const NODE = 'node-a';

export interface ObjOpts {
  namespace?: string;
  node?: string | null;
  labels?: Record<string, string>;
  finalizers?: string[];
  memory?: string | number;
  cpu?: string | number;
  spec?: Record<string, unknown>;
}

/** A valid Container object for the fake (as kubectl would send it). */
export function containerObj(name: string, o: ObjOpts = {}): KObject {
  const spec: Record<string, unknown> = {
    template: 'host',
    command: ['/bin/sh', '-c', 'exec sleep 100000'],
    resources: { cpu: o.cpu ?? '500m', memory: o.memory ?? '64Mi' },
    terminationGracePeriodSeconds: 1,
    ...(o.spec ?? {}),
  };
  if (o.node !== null) spec.nodeName = o.node ?? NODE;
  const metadata: Record<string, unknown> = { name, namespace: o.namespace ?? 'default' };
  if (o.labels) metadata.labels = o.labels;
  if (o.finalizers) metadata.finalizers = o.finalizers;
  return { apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata, spec };
}

export async function startFake(opts: FakeApiServerOptions = {}): Promise<{ fake: FakeApiServer; api: KubeApi }> {
  const fake = await FakeApiServer.start(opts);
  return { fake, api: createKubeApi(fake.kubeConfig(), { requestTimeoutMs: 5000 }) };
}

/** Raw HTTP against the fake (for what the client does not expose). */
export async function http(
  fake: FakeApiServer,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${fake.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // watch streams: several lines
  }
  return { status: res.status, body: parsed };
}

/** Reads a watch stream until `n` events arrived or the stream ended. */
export async function readWatch(fake: FakeApiServer, query: string, n: number, timeoutMs = 3000): Promise<any[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: any[] = [];
  try {
    const res = await fetch(`${fake.url}/apis/acetate.dev/v1alpha1/containers?watch=true&${query}`, { signal: ac.signal });
    if (res.status !== 200) return [{ httpStatus: res.status, body: await res.json() }];
    const reader = res.body!.getReader();
    let buf = '';
    while (events.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    }
    ac.abort();
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

/**
 * Runs a write step for a key the way the loop's reconcile does: a failure becomes
 * requeueFor(err) and WorkQueue.done alone decides what follows; a retry due now (a conflict) runs
 * again at once, a backoff waits for the queue's clock (advance it and call again). Returns the
 * queue's decisions, in order.
 */
export async function stepLikeTheLoop(
  step: () => Promise<void>,
  q: WorkQueue = new WorkQueue({ clock: new FakeClock() }),
  key = 'default/web',
): Promise<Decision[]> {
  const decisions: Decision[] = [];
  q.add(key);
  for (let k = q.tryGet(); k !== undefined; k = q.tryGet()) {
    let requeue: Requeue = { kind: 'done' };
    try {
      await step();
    } catch (err) {
      requeue = requeueFor(err);
    }
    decisions.push(q.done(k, requeue));
  }
  return decisions;
}
