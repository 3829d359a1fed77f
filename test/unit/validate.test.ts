import assert from 'node:assert/strict';
import yaml from 'js-yaml';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { validateManifest } from '../../src/api/validate.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { normalizeManifest } from '../../src/api/normalize.js';
import { parseCpu, parseMemory, formatCpu, formatMemory } from '../../src/api/quantity.js';

function base(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = { name: 'web' }): unknown {
  return { apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata, spec: { template: 'host', command: ['/bin/true'], ...spec } };
}

function issues(obj: unknown): string[] {
  const r = validateManifest(obj);
  return r.ok ? [] : r.issues.map((i) => `${i.field}: ${i.message}`);
}

describe('validateManifest (CRD schema through ajv)', () => {
  it('accepts a full, valid Container', () => {
    assert.deepEqual(
      issues(
        base({
          args: ['x'],
          env: [{ name: 'A', value: '1' }],
          workingDir: '/tmp',
          hostname: 'web-1',
          state: 'Stopped',
          resources: { cpu: '500m', memory: '256Mi', pids: 100 },
          resizePolicy: [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }],
          restartPolicy: 'OnFailure',
          mounts: [{ hostPath: '/srv', containerPath: '/data', readOnly: true }],
          network: 'host',
          nodeName: 'node-1',
          securityContext: { capabilities: { add: ['NET_ADMIN'] }, hostUsers: true }, // network: host needs hostUsers: true said
          terminationGracePeriodSeconds: 3,
        }),
      ),
      [],
    );
  });

  it('names the field and says what a quantity looks like', () => {
    assert.deepEqual(issues(base({ resources: { memory: '12 GB' } })), ["spec.resources.memory: '12 GB' is not a quantity such as 512Mi"]);
    assert.deepEqual(issues(base({ resources: { cpu: 'lots' } })), ["spec.resources.cpu: 'lots' is not a CPU quantity such as 500m or 2"]);
    assert.deepEqual(issues(base({ resources: { cpu: 0.5 } })), ['spec.resources.cpu: must be a whole number or a string, not a number']);
  });

  it('reports missing, unknown (with a suggestion), mistyped and out-of-range fields', () => {
    assert.deepEqual(issues(base({ command: undefined })), ['spec.command: required field is missing']);
    assert.deepEqual(issues(base({ resources: { memroy: '1Gi' } })), ['spec.resources.memroy: unknown field (did you mean memory?)']);
    assert.deepEqual(issues(base({ command: '/bin/true' })), ['spec.command: must be a list, not a string']);
    assert.deepEqual(issues(base({ state: 'running' })), ["spec.state: 'running' is not one of Running, Stopped"]);
    assert.deepEqual(issues(base({ resources: { pids: 0 } })), ['spec.resources.pids: 0 must be at least 1']);
    assert.deepEqual(issues(base({ env: [{ name: '1X' }] })), ["spec.env[0].name: '1X' is not a valid environment variable name"]);
  });

  it('checks metadata.name, namespace, apiVersion and kind', () => {
    assert.match(issues(base({}, { name: 'Web_1' }))[0]!, /^metadata\.name: 'Web_1' is not a valid name/);
    assert.deepEqual(issues(base({}, {})), ['metadata.name: required field is missing']);
    assert.match(issues(base({}, { name: 'a', namespace: '../etc' }))[0]!, /^metadata\.namespace: '\.\.\/etc' is not a valid namespace/);
    assert.deepEqual(issues({ ...(base() as object), kind: 'Pod' }), ["kind: 'Pod' is not one of Container"]);
    assert.deepEqual(issues('just a string'), ['(document): a Container must be a mapping, not a string']);
  });

  it('refuses path escapes, mounts over / and limits no container can run with', () => {
    assert.deepEqual(issues(base({ mounts: [{ hostPath: '/srv/../etc', containerPath: '/data' }] })), [
      "spec.mounts[0].hostPath: '/srv/../etc' must not contain '..'",
    ]);
    assert.deepEqual(issues(base({ mounts: [{ hostPath: '/srv', containerPath: '/' }] })), [
      "spec.mounts[0].containerPath: cannot mount over the container's root",
    ]);
    assert.deepEqual(issues(base({ mounts: [{ hostPath: 'srv', containerPath: '/x' }] })), ["spec.mounts[0].hostPath: 'srv' is not an absolute path"]);
    assert.match(issues(base({ resources: { memory: '1Ki' } }))[0]!, /below the smallest memory limit/);
    assert.match(issues(base({ resources: { cpu: '1m' } }))[0]!, /below the smallest CPU limit/);
  });

  it('never throws, whatever the input: every failure is an issue (property)', () => {
    const specKeys = ['template', 'command', 'args', 'env', 'resources', 'mounts', 'resizePolicy', 'securityContext', 'state', 'network'];
    const near = fc.record({
      apiVersion: fc.constant('acetate.dev/v1alpha1'),
      kind: fc.constant('Container'),
      metadata: fc.oneof(fc.anything(), fc.record({ name: fc.anything(), namespace: fc.anything() })),
      spec: fc.oneof(
        fc.anything(),
        fc.dictionary(
          fc.constantFrom(...specKeys),
          fc.oneof(
            fc.anything(),
            fc.array(fc.anything()),
            fc.dictionary(fc.constantFrom('cpu', 'memory', 'pids', 'name', 'hostPath', 'containerPath'), fc.anything()),
          ),
        ),
      ),
    });
    fc.assert(
      fc.property(fc.oneof(fc.anything(), near), (v) => {
        const r = validateManifest(v);
        if (!r.ok) for (const i of r.issues) assert.ok(i.message.length > 0 && i.field.length > 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('fills defaults and parses quantities when normalizing', () => {
    const r = validateManifest(base({ resources: { cpu: '1.5', memory: '1Gi' } }));
    assert.ok(r.ok);
    const d = normalizeManifest(r.manifest, { kind: 'file', file: '/x.yaml', line: 1 });
    assert.equal(d.key, 'default/web');
    assert.equal(d.spec.hostname, 'web');
    assert.equal(d.spec.state, 'Running');
    assert.equal(d.spec.restartPolicy, 'Always');
    assert.equal(d.spec.network, 'none');
    assert.equal(d.spec.security.noNewPrivileges, true);
    assert.deepEqual(d.spec.resources, { cpuMillis: 1500, memoryBytes: 2 ** 30 });
    assert.deepEqual(d.spec.resizePolicy, { cpu: 'NotRequired', memory: 'NotRequired', pids: 'NotRequired' });
  });

  it('accepts every example in manifests/ unchanged', () => {
    const dir = path.join(PACKAGE_ROOT, 'manifests');
    const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
    assert.ok(files.length >= 2);
    for (const f of files) {
      for (const doc of yaml.loadAll(readFileSync(path.join(dir, f), 'utf8'))) assert.deepEqual(issues(doc), [], f);
    }
  });
});

describe('quantities', () => {
  it('parses and formats CPU and memory like Kubernetes', () => {
    assert.equal(parseCpu('500m'), 500);
    assert.equal(parseCpu('2'), 2000);
    assert.equal(parseCpu('0.25'), 250);
    assert.equal(parseCpu(3), 3000);
    assert.equal(parseCpu('0.009'), 9);
    assert.equal(parseCpu('0.0001'), 1);
    assert.equal(parseCpu('.5'), 500);
    assert.equal(parseMemory('256Mi'), 256 * 2 ** 20);
    assert.equal(parseMemory('1G'), 1e9);
    assert.equal(parseMemory('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(parseMemory('128974848'), 128974848);
    assert.equal(parseMemory('129e6'), 129e6);
    assert.equal(formatCpu(500), '500m');
    assert.equal(formatCpu(2000), '2');
    assert.equal(formatMemory(512 * 2 ** 20), '512Mi');
    assert.equal(formatMemory(1000), '1000');
    assert.throws(() => parseMemory('12 GB'), /is not a quantity such as 512Mi/);
  });
});
