/**
 * The prober on a fake clock with scripted check results: Kubernetes' counting (thresholds,
 * initial delay, period), startup gating, readiness verdicts, liveness failures kept for their
 * process until it is gone, the concurrency limit (a hanging check of one container does not hold
 * another's), checks in flight aborted by forget/stop, and that nothing is left scheduled after them.
 */
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/contracts/clock.js';
import { Prober } from '../../src/controller/probes/prober.js';
import { normalizeProbe } from '../../src/api/probes.js';
import { probeHash } from '../../src/plan/probe-kill.js';
import type { NormalizedProbes, Probe } from '../../src/api/types.js';
import type { ActualContainer, Runtime } from '../../src/runtime/runtime.js';
import type { ProbeOutcome } from '../../src/controller/probes/check.js';
import { testSpec, FILE_SOURCE } from '../support/test-spec.js';

const flush = () => new Promise<void>((r) => setImmediate(r));

function actual(
  probes: Partial<Record<'startup' | 'readiness' | 'liveness', Probe>>,
  pid = 100,
  startedAt = new Date(Date.UTC(2024, 0, 1)).toISOString(),
): ActualContainer {
  const norm: NormalizedProbes = {};
  for (const [k, p] of Object.entries(probes)) norm[k as 'startup'] = normalizeProbe(p);
  const spec = testSpec({ probes: norm });
  return {
    key: 'default/a',
    namespace: 'default',
    name: 'a',
    id: 'default_a',
    applied: { namespace: 'default', name: 'a', spec, specHash: 'h', source: FILE_SOURCE, createdAt: startedAt },
    process: { state: 'running', pid, startedAt },
    limits: {},
    restartCount: 0,
  };
}

describe('Prober (fake clock, scripted checks)', () => {
  let clock: FakeClock;
  let results: Map<string, boolean>;
  let calls: string[];
  let changes: string[];
  let aborted: string[];
  let prober: Prober;
  const make = (opts: { concurrency?: number; hold?: Promise<void> } = {}) =>
    new Prober({
      runtime: {} as Runtime,
      clock,
      concurrency: opts.concurrency,
      tools: () => Promise.reject(new Error('not used')),
      onChange: (k) => changes.push(k),
      check: async (p, t, deps): Promise<ProbeOutcome> => {
        const cmd = p.handler.kind === 'exec' ? p.handler.command[0]! : p.handler.kind;
        calls.push(`${cmd}@${clock.now() - Date.UTC(2024, 0, 1)}`);
        // "hang": runs until aborted, as a real check killed by the prober.
        if (cmd === 'hang') {
          await new Promise<void>((resolve) => deps.signal?.addEventListener('abort', () => resolve(), { once: true }));
          aborted.push(t.key);
          return { ok: false, output: 'killed' };
        }
        if (opts.hold) await opts.hold;
        return { ok: results.get(cmd) ?? false, output: `${cmd} says ${results.get(cmd) ? 'yes' : 'no'} to ${t.pid}` };
      },
    });

  beforeEach(() => {
    clock = new FakeClock();
    results = new Map();
    calls = [];
    changes = [];
    aborted = [];
    prober = make();
  });
  afterEach(() => prober.stop());

  const tick = async (ms: number) => {
    clock.advance(ms);
    await flush();
  };

  it('readiness: not ready until successThreshold successes, not ready again after failureThreshold failures', async () => {
    prober.sync(
      'default/a',
      actual({ readiness: { exec: { command: ['ready'] }, initialDelaySeconds: 2, periodSeconds: 1, successThreshold: 2, failureThreshold: 2 } }),
    );
    assert.deepEqual(prober.verdict('default/a', 100), { ready: false, reason: 'ReadinessProbe', message: 'readiness probe has not succeeded yet' });
    await tick(1999);
    assert.deepEqual(calls, [], 'initialDelaySeconds counts from the start of the process');
    results.set('ready', true);
    await tick(1);
    await tick(1000);
    assert.deepEqual(calls, ['ready@2000', 'ready@3000']);
    assert.equal(prober.verdict('default/a', 100)?.ready, true);
    assert.deepEqual(changes, ['default/a'], 'the flip enqueued the key once');
    results.set('ready', false);
    await tick(1000);
    assert.equal(prober.verdict('default/a', 100)?.ready, true, 'one failure of two');
    await tick(1000);
    assert.equal(prober.verdict('default/a', 100)?.ready, false);
    assert.match(prober.verdict('default/a', 100)!.message, /ready says no to 100/);
    assert.equal(changes.length, 2);
  });

  it('startup gates readiness and liveness; it stops once it passed', async () => {
    prober.sync(
      'default/a',
      actual({
        startup: { exec: { command: ['boot'] }, periodSeconds: 1, failureThreshold: 30 },
        readiness: { exec: { command: ['ready'] }, periodSeconds: 1 },
        liveness: { exec: { command: ['live'] }, periodSeconds: 1 },
      }),
    );
    results.set('ready', true).set('live', true);
    await tick(0);
    await tick(1000);
    assert.deepEqual(calls, ['boot@0', 'boot@1000']);
    assert.equal(prober.verdict('default/a', 100)?.reason, 'StartupProbe');
    results.set('boot', true);
    await tick(1000);
    await tick(0);
    assert.deepEqual(calls.slice(2).sort(), ['boot@2000', 'live@2000', 'ready@2000']);
    assert.equal(prober.verdict('default/a', 100)?.ready, true);
    await tick(1000);
    assert.ok(!calls.some((c) => c === 'boot@3000'), 'no startup check once it passed');
  });

  it('liveness: failureThreshold failures make one failure for that pid, kept until the process is gone; probing stops', async () => {
    const live = { liveness: { exec: { command: ['live'] }, periodSeconds: 10, failureThreshold: 3 } };
    prober.sync('default/a', actual(live));
    assert.equal(prober.verdict('default/a', 100), undefined, 'no readiness probe: Ready is the process state');
    await tick(0);
    await tick(10_000);
    assert.equal(prober.failure('default/a', 100), undefined);
    await tick(10_000);
    assert.deepEqual(changes, ['default/a', 'default/a'], 'the first failure (its message), then the third (kill)');
    assert.equal(prober.failure('default/a', 99), undefined, 'never applied to another process');
    const f = prober.failure('default/a', 100);
    assert.equal(f?.kind, 'liveness');
    assert.equal(f?.probeHash, probeHash(normalizeProbe(live.liveness)), 'about the probe that failed (the plan honours it only while declared)');
    assert.match(f!.message, /^Liveness probe failed 3 times: live says no to 100$/);
    assert.equal(clock.pending(), 0, 'nothing scheduled for the condemned process');
    prober.sync('default/a', actual(live));
    assert.deepEqual(prober.failure('default/a', 100), f, 'kept while that process runs (a kill that failed is planned again)');
    prober.sync('default/a', actual(live, 200));
    assert.equal(prober.failure('default/a', 100), undefined, 'gone with the process');
    assert.equal(prober.failure('default/a', 200), undefined, 'the next process starts with no verdict');
  });

  it('a new process (another pid or start time) gets fresh workers; no probes, not running or forget end them', async () => {
    prober.sync('default/a', actual({ readiness: { exec: { command: ['ready'] }, periodSeconds: 1 } }));
    results.set('ready', true);
    await tick(0);
    assert.equal(prober.verdict('default/a', 100)?.ready, true);
    prober.sync('default/a', actual({ readiness: { exec: { command: ['ready'] }, periodSeconds: 1 } }, 200));
    assert.equal(prober.verdict('default/a', 200)?.ready, false, 'the new process starts not ready');
    assert.equal(prober.verdict('default/a', 100), undefined);
    prober.sync('default/a', { ...actual({}, 200) });
    assert.equal(prober.size, 0);
    assert.equal(clock.pending(), 0);
    prober.sync('default/a', actual({ readiness: { exec: { command: ['ready'] } } }, 300));
    prober.forget('default/a');
    assert.equal(clock.pending(), 0);
  });

  it('runs at most `concurrency` checks at once; the others wait, none is dropped', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    await prober.stop();
    prober = make({ concurrency: 2, hold });
    for (let i = 0; i < 5; i++) {
      const a = actual({ readiness: { exec: { command: [`c${i}`] }, periodSeconds: 1 } }, 100 + i);
      prober.sync(`default/c${i}`, { ...a, key: `default/c${i}` });
    }
    await tick(0);
    assert.deepEqual({ running: prober.limiter.activeCount, waiting: prober.limiter.pendingCount }, { running: 2, waiting: 3 });
    release();
    for (let i = 0; i < 5; i++) await flush();
    assert.equal(prober.checks, 5);
  });

  it("one container's hanging checks hold its slot for a second, never another container's probes", async () => {
    await prober.stop();
    prober = make({ concurrency: 1 });
    const hang = actual({ readiness: { exec: { command: ['hang'] }, periodSeconds: 1, timeoutSeconds: 86400 } }, 100);
    prober.sync('default/hang', { ...hang, key: 'default/hang' });
    const sick = actual({ liveness: { exec: { command: ['sick'] }, periodSeconds: 1, failureThreshold: 2 } }, 200);
    prober.sync('default/sick', { ...sick, key: 'default/sick' });
    await tick(0);
    assert.deepEqual(calls, ['hang@0'], 'one slot, taken by the hanging check');
    await tick(1000);
    assert.deepEqual(calls, ['hang@0', 'sick@1000'], 'the hanging check gave its slot back after a second');
    await tick(1000);
    assert.equal(prober.failure('default/sick', 200)?.kind, 'liveness', 'failed on time beside the hanging check');
    assert.deepEqual(
      calls.filter((c) => c.startsWith('hang')),
      ['hang@0'],
      'one check in flight per probe',
    );
  });

  it('forget and stop abort the checks in flight; stop resolves once they ended', async () => {
    for (const k of ['a', 'b']) {
      const a = actual({ readiness: { exec: { command: ['hang'] }, periodSeconds: 1, timeoutSeconds: 3600 } }, 100);
      prober.sync(`default/${k}`, { ...a, key: `default/${k}` });
    }
    await tick(0);
    prober.forget('default/a');
    await flush();
    assert.deepEqual(aborted, ['default/a']);
    await prober.stop();
    assert.deepEqual(aborted, ['default/a', 'default/b']);
    assert.deepEqual(changes, [], 'an aborted check is no result');
    assert.equal(clock.pending(), 0);
  });
});
