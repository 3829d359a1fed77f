/**
 * `acetate get -o yaml|json` prints Container objects in Kubernetes' shape: the output of file
 * mode validates against the CRD's schema (status included), one NAME gives the object, none a
 * `kind: List`; the table output stays.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import yaml from 'js-yaml';
import { writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { manifest } from '../support/manifest.js';
import { validateManifest } from '../../src/api/validate.js';
import { assertValidContainerObject } from '../support/crd-object.js';
import type { ContainerManifest } from '../../src/api/types.js';

const PROBES = `  init: false
  readinessProbe:
    exec: { command: [cat, /etc/hostname] }
    periodSeconds: 5
  livenessProbe:
    tcpSocket: { port: 8080 }
    initialDelaySeconds: 3
`;

describe('acetate get -o yaml|json: Container objects (real runc)', function () {
  this.timeout(60_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;

  before(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
    await writeFile(path.join(dir, 'a.yaml'), manifest('alpha', { extra: PROBES }));
    await writeFile(path.join(dir, 'b.yaml'), manifest('beta', { state: 'Stopped', cpu: '2', memory: '1Gi' }));
    const r = await runCli(['apply', '-f', dir], { stateDir });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('get NAME -o yaml is one Container that validates against the CRD schema, status and conditions included', async () => {
    const r = await runCli(['get', 'alpha', '-o', 'yaml'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    const obj = yaml.load(r.stdout) as ContainerManifest;
    assertValidContainerObject(obj);
    assert.equal(obj.apiVersion, 'acetate.dev/v1alpha1');
    assert.equal(obj.kind, 'Container');
    assert.equal(obj.metadata.name, 'alpha');
    assert.equal(obj.metadata.namespace, 'default');
    assert.match(obj.metadata.creationTimestamp ?? '', /^\d{4}-/);
    assert.equal(obj.metadata.annotations?.['acetate.dev/source'], `${path.join(dir, 'a.yaml')}:4`, 'file and line of metadata.name');
    assert.equal(obj.spec.init, false);
    assert.deepEqual(obj.spec.readinessProbe?.exec, { command: ['cat', '/etc/hostname'] });
    assert.equal(obj.spec.readinessProbe?.periodSeconds, 5);
    assert.equal(obj.spec.livenessProbe?.failureThreshold, 3, "Kubernetes' default filled in");
    assert.equal(obj.status?.phase, 'Running');
    assert.ok((obj.status?.pid ?? 0) > 1);
    assert.deepEqual(obj.status?.resources, { cpu: '500m', memory: '64Mi', pids: 64 }, 'limits read from the cgroup');
    const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
    // apply alone runs no probes: a container with a readiness probe is not Ready until `run` saw one pass.
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'ProbesPending');
    assert.match(ready?.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT/);
  });

  it('without NAME: a kind List of every container, as JSON too', async () => {
    const r = await runCli(['get', '-o', 'json'], { stateDir });
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { apiVersion: string; kind: string; items: ContainerManifest[] };
    assert.equal(list.kind, 'List');
    assert.equal(list.apiVersion, 'v1');
    assert.deepEqual(
      list.items.map((o) => o.metadata.name),
      ['alpha', 'beta'],
    );
    for (const o of list.items) {
      const v = validateManifest(o);
      assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
    }
    const beta = list.items[1]!;
    assert.equal(beta.status?.phase, 'Stopped');
    assert.equal(beta.spec.resources?.memory, '1Gi');
    assert.equal(beta.spec.init, true);
  });

  it('keeps the table output', async () => {
    const r = await runCli(['get'], { stateDir });
    assert.match(r.stdout, /^NAME\s+STATE\s+PID/);
    assert.match(r.stdout, /alpha\s+Running/);
  });
});
