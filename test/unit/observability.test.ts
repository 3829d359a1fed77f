import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { parseListenAddress, startMetricsServer } from '../../src/observability/http.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createLogger } from '../../src/observability/logger.js';
import { logAction } from '../../src/observability/action-log.js';

describe('observability', () => {
  it('parses --metrics-addr', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseListenAddress(':9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListenAddress('9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.equal(parseListenAddress('0'), undefined);
    assert.equal(parseListenAddress('off'), undefined);
    assert.throws(() => parseListenAddress('host:port'), /not an address/);
    assert.throws(() => parseListenAddress('1.2.3.4:70000'), /not an address/);
  });

  it('serves /metrics, /healthz and /readyz', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let ready = false;
    metrics.addCollector(() => metrics.queueDepth.set(3));
    const srv = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, { healthy: () => true, ready: () => ready });
    try {
      assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${srv.url}/readyz`)).status, 503);
      ready = true;
      assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      assert.match(text, /acetate_queue_depth 3/);
      assert.match(text, /acetate_containers\{phase="Running"\} 0/);
      assert.equal((await fetch(`${srv.url}/nope`)).status, 404);
    } finally {
      await srv.close();
    }
  });

  it('logs one JSON line per action', () => {
    let out = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const logger = createLogger({ json: true, stream });
    logAction(logger, { container: 'default/web', action: 'resize', durationMs: 12, result: 'resized', reason: 'memory 64Mi → 128Mi' });
    const line = JSON.parse(out.trim()) as Record<string, unknown>;
    assert.equal(line.container, 'default/web');
    assert.equal(line.action, 'resize');
    assert.equal(line.durationMs, 12);
    assert.equal(line.result, 'resized');
    assert.equal(line.level, 'info');
  });
});
