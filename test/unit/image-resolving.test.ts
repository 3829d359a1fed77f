/** A slow registry holds no worker of the loop; the registry time limit as a typed, named failure. */
import assert from 'node:assert/strict';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest, DesiredContainer } from '../../src/api/types.js';
import { PendingResolutions } from '../../src/controller/image-resolving.js';
import { pinForReconcile } from '../../src/controller/image-pull.js';
import { requeueFor } from '../../src/controller/requeue.js';
import { registryTimeoutMs } from '../../src/images/registry-timeout.js';
import { ImagePullError, RegistryTimeoutError } from '../../src/images/errors.js';
import type { ImageResolver } from '../../src/images/resolver.js';

const D1 = `sha256:${'1'.repeat(64)}`;

function desired(image: string, policy = 'IfNotPresent'): DesiredContainer {
  const m = {
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'slow' },
    spec: { image, imagePullPolicy: policy },
  } as ContainerManifest;
  return normalizeManifest(m, { kind: 'file', file: '/m/slow.yaml', line: 1 });
}

/** A registry that answers when the test says so (the resolver's contract: resolve → digest). */
function registry() {
  const asked: string[] = [];
  const answers = new Map<string, (digest: string) => void>();
  const resolver = {
    store: { skopeo: { registryTimeoutMs: 30_000 } },
    resolve(ref: string): Promise<string> {
      asked.push(ref);
      return new Promise((resolve) => answers.set(ref, resolve));
    },
  } as unknown as ImageResolver;
  return { resolver, asked, answer: (ref: string, digest: string) => answers.get(ref)!(digest) };
}

describe('image resolution beside the loop (PendingResolutions)', () => {
  it('a registry slower than the wait leaves the key resolving, enqueues it when it answers, and hands the answer to the next reconcile', async () => {
    const reg = registry();
    const enqueued: string[] = [];
    // The wait injected (not a wall-clock bound, which a loaded machine can miss): it is asked for once, of the short wait.
    const slept: number[] = [];
    const pending = new PendingResolutions({ onSettled: (k) => enqueued.push(k), waitMs: 20, sleep: async (ms) => void slept.push(ms) });
    const d = desired('127.0.0.1:5000/slow/app:1');
    assert.equal(await pending.pin(d.key, d, undefined, reg.resolver), 'resolving');
    assert.deepEqual(slept, [20], 'the worker waited the short wait only');
    assert.deepEqual(enqueued, []);
    reg.answer('127.0.0.1:5000/slow/app:1', D1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(enqueued, [d.key], 'the key is enqueued when the registry answers');
    const r = await pending.pin(d.key, d, undefined, reg.resolver);
    assert.notEqual(r, 'resolving');
    assert.equal(r !== 'resolving' && r.desired?.spec.image?.digest, D1);
    assert.equal(reg.asked.length, 1, 'the registry was asked once');
  });

  it('an answer within the wait is used at once, and nothing is enqueued', async () => {
    const reg = registry();
    const enqueued: string[] = [];
    const pending = new PendingResolutions({ onSettled: (k) => enqueued.push(k), waitMs: 5000 });
    const d = desired('127.0.0.1:5000/fast/app:1');
    setTimeout(() => reg.answer('127.0.0.1:5000/fast/app:1', D1), 10);
    const r = await pending.pin(d.key, d, undefined, reg.resolver);
    assert.equal(r !== 'resolving' && r.desired?.spec.image?.digest, D1);
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(enqueued, []);
  });

  it('another image asked for meanwhile is a new question; a new container waits in ImageResolving, held from the plan', async () => {
    const reg = registry();
    const pending = new PendingResolutions({ onSettled: () => undefined, waitMs: 10 });
    const a = desired('127.0.0.1:5000/slow/app:1');
    const b = desired('127.0.0.1:5000/slow/app:2');
    const first = await pinForReconcile(a.key, a, undefined, reg.resolver, 0, pending);
    assert.equal(first.waiting?.reason, 'ImageResolving');
    assert.match(first.heldKeys!.get(a.key)!, /^ImageResolving: /);
    assert.equal(first.desired, undefined, 'nothing to plan for it yet');
    assert.equal(await pending.pin(b.key, b, undefined, reg.resolver), 'resolving');
    assert.deepEqual(reg.asked, ['127.0.0.1:5000/slow/app:1', '127.0.0.1:5000/slow/app:2']);
  });
});

describe('the registry time limit', () => {
  it('is read from --registry-timeout, else ACETATE_REGISTRY_TIMEOUT; a bad value names where it came from', () => {
    assert.equal(registryTimeoutMs(undefined, {}), undefined);
    assert.equal(registryTimeoutMs(undefined, { ACETATE_REGISTRY_TIMEOUT: '2m' }), 120_000);
    assert.equal(registryTimeoutMs('1500ms', { ACETATE_REGISTRY_TIMEOUT: '2m' }), 1500);
    assert.throws(() => registryTimeoutMs('soon', {}), /--registry-timeout: 'soon' is not a duration/);
    assert.throws(() => registryTimeoutMs(undefined, { ACETATE_REGISTRY_TIMEOUT: '10ms' }), /ACETATE_REGISTRY_TIMEOUT: '10ms' is too short/);
  });

  it('an expiry is a transient pull failure (back-off) naming the registry and the limit', () => {
    const expired = new RegistryTimeoutError('127.0.0.1:5000', 30_000, 'did not answer');
    const err = new ImagePullError(`127.0.0.1:5000/slow/app:1: ${expired.message}`, 'ErrImagePull', { cause: expired });
    assert.match(err.message, /registry 127\.0\.0\.1:5000 did not answer within 30s/);
    assert.equal(requeueFor(err).kind, 'backoff');
    assert.match(new RegistryTimeoutError('r', 1500, 'sent no data').message, /sent no data within 1500ms/);
  });
});
