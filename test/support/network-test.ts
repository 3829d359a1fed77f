/** Helpers for network tests: HTTP to 127.0.0.1 or to a test container's address, bounded; httpd containers. */
import type { CreateRequest } from '../../src/runtime/runtime.js';
import type { DesiredContainer, PublishedPort } from '../../src/api/types.js';
import { testNetwork, type TestNetwork } from './network-leaks.js';
import { tmpState, type TmpState } from './tmp-state.js';
import { FILE_SOURCE, testSpec } from './test-spec.js';
import { manifestHead } from './manifest.js';

// Shared with the network benchmark (bench must not import test code).
export { freePort, httpGet } from '../../bench/lib/local-net.js';

/**
 * Each test of the suite gets a bridge and /24 of its own and a state dir on it (tmpState), left
 * clean and checked after it: read them through the getters, inside the tests.
 */
export function bridgeStatePerTest(): { st(): TmpState; n(): TestNetwork } {
  let st: TmpState | undefined;
  let n: TestNetwork | undefined;
  beforeEach(async () => {
    n = await testNetwork();
    st = await tmpState(undefined, { network: n });
  });
  afterEach(async () => {
    await st!.cleanupAndAssertNoLeaks();
  });
  return { st: () => st!, n: () => n! };
}

/** The desired container a create request declares (what plan compares with the actual). */
export function desiredOf(req: CreateRequest): DesiredContainer {
  return { key: `${req.namespace}/${req.name}`, namespace: req.namespace, name: req.name, spec: req.spec, source: req.source };
}

/** busybox httpd on :80 answering `hello-<name>`. */
export function httpdScript(name: string): string {
  return `mkdir -p /tmp/w && echo hello-${name} > /tmp/w/index.html && exec busybox httpd -f -p 80 -h /tmp/w`;
}

export function webRequest(name: string, ports: PublishedPort[] = [], script = httpdScript(name)): CreateRequest {
  return {
    namespace: 'default',
    name,
    spec: testSpec({ command: ['/bin/sh', '-c', script], network: 'bridge', ...(ports.length ? { ports } : {}) }),
    source: FILE_SOURCE,
  };
}

export function published(hostPort: number, hostIP = '127.0.0.1'): PublishedPort[] {
  return [{ name: 'http', containerPort: 80, hostPort, hostIP, protocol: 'TCP' }];
}

/**
 * A manifest of an httpd container (httpdScript) on the bridge, publishing port 80 on hostPort.
 * The hostIP stands on line 14 (tests that break it look for that line); `extra` follows the ports.
 */
export function bridgeWebManifest(name: string, hostPort: number, opts: { hostIP?: string; gracePeriodSeconds?: number; extra?: string } = {}): string {
  return `${manifestHead(name)}  template: host
  command: ["/bin/sh", "-c", ${JSON.stringify(httpdScript(name))}]
  network: bridge
  terminationGracePeriodSeconds: ${opts.gracePeriodSeconds ?? 1}
  ports:
    - name: http
      containerPort: 80
      hostPort: ${hostPort}
      hostIP: ${opts.hostIP ?? '127.0.0.1'}
${opts.extra ?? ''}`;
}
