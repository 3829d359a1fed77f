/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/** Shared bits of the Kubernetes tests: Container objects, a started fake API server, the loop of `acetate run --kube`. */
import type { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type FakeApiServerOptions, type KObject } from '../support/fake-apiserver.js';
import { createKubeApi, type KubeApi } from '../../src/sources/kube/client.js';
import { createKubeSource, type KubeSource } from '../../src/sources/kube/source.js';
import { WorkQueue, type Decision } from '../../src/controller/queue.js';
import { requeueFor, type Requeue } from '../../src/controller/requeue.js';
import { Controller, type ControllerOptions } from '../../src/controller/loop.js';
import { plan } from '../../src/plan/plan.js';
import { executeAction } from '../../src/apply/execute.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { FakeClock } from '../../src/contracts/clock.js';
import { MemoryLogger, silentLogger, type Logger } from '../../src/contracts/logger.js';
import type { NodeSecurity } from '../../src/policy/node-levels.js';

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

export interface KubeControllerOptions {
  runtime: Runtime;
  kubeConfig: KubeConfig;
  /** This node's name. Default NODE. */
  node?: string;
  /** The source's logger (the loop's own is silent). Default a MemoryLogger. */
  logger?: Logger;
  /**
   * Timings for the fake API server, so tests wait little: informer backoff 50-500 ms, resync 1 s,
   * retries 200 ms-2 s, and a node of 4 CPUs and 8 GiB whatever this machine has. Default true;
   * false leaves the source and the loop on their defaults (a real cluster).
   */
  fast?: boolean;
  /** More or other loop options (e.g. resyncMs). */
  controller?: Partial<ControllerOptions>;
  /** The node's security levels (as run-controller.ts passes them); absent: levels are not checked. */
  security?: NodeSecurity;
}

/** The loop of `acetate run --kube` as src/cli/commands/run-controller.ts wires it (source, its sinks and recorders), started. */
export async function startKubeController(o: KubeControllerOptions): Promise<{ source: KubeSource; controller: Controller }> {
  const fast = o.fast ?? true;
  const node = o.node ?? NODE;
  const source = createKubeSource({
    node,
    kubeConfig: o.kubeConfig,
    logger: o.logger ?? new MemoryLogger(),
    ...(fast ? { capacity: { cpuMillis: 4000, memoryBytes: 8 * 2 ** 30 }, informer: { backoff: { baseMs: 50, maxMs: 500 } } } : {}),
    ...(o.security ? { capacity: { ...(fast ? { cpuMillis: 4000, memoryBytes: 8 * 2 ** 30 } : {}), security: o.security } } : {}),
  });
  const controller = new Controller({
    runtime: o.runtime,
    sources: [source],
    plan,
    execute: executeAction,
    statusSinks: source.sinks(),
    recorders: source.recorders(),
    nodeName: node,
    logger: silentLogger,
    ...(fast ? { resyncMs: 1000, backoff: { baseMs: 200, maxMs: 2000 } } : {}),
    ...o.controller,
  });
  await controller.start();
  return { source, controller };
}

/** What a test starts on the fake and the hooks stop after it (a source, an informer). */
export interface Stoppable {
  stop(): Promise<void>;
}

export interface FakeEachTest {
  /** Stops `started` after the test, before the server closes. */
  stopAfterTest<T extends Stoppable>(started: T): T;
  /** Closes this test's server and starts one with other options instead (given to `set` too). */
  restartFake(opts: FakeApiServerOptions): Promise<{ fake: FakeApiServer; api: KubeApi }>;
}

/**
 * The hooks of a suite that wants a fresh fake API server for each test: before each test `set`
 * receives it and a client on it; after the test, what the test handed to stopAfterTest is
 * stopped (last first), then the server is closed.
 */
export function fakeApiServerEachTest(set: (started: { fake: FakeApiServer; api: KubeApi }) => void): FakeEachTest {
  let fake: FakeApiServer | undefined;
  const toStop: Stoppable[] = [];
  const restartFake = async (opts: FakeApiServerOptions = {}) => {
    await fake?.close();
    const started = await startFake(opts);
    fake = started.fake;
    set(started);
    return started;
  };
  beforeEach(async () => {
    fake = undefined;
    await restartFake();
  });
  afterEach(async () => {
    for (const s of toStop.splice(0).reverse()) await s.stop();
    await fake?.close();
  });
  return {
    stopAfterTest: (started) => {
      toStop.push(started);
      return started;
    },
    restartFake,
  };
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
