/* eslint-disable @typescript-eslint/no-explicit-any -- untyped JSON from the API server and YAML files */
/**
 * controller/: every YAML parses and validates against the official Kubernetes schemas, the
 * kustomization builds and lists files that exist, the DaemonSet is wired as acetate needs
 * (privileges, NODE_NAME, state dir, probes on the metrics port), the ClusterRole grants every
 * verb the code uses and nothing more, and the Dockerfile/entrypoint hold together. The image
 * itself cannot be built here (no container engine).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { KubeSource } from '../../src/sources/kube/source.js';
import { FINALIZER } from '../../src/sources/kube/constants.js';
import { parseInlineSetting } from '../../src/policy/node-levels.js';
import { computeStatus } from '../../src/controller/status.js';
import { waitFor } from '../support/wait.js';
import { containerObj, NODE, startFake, stepLikeTheLoop } from './helpers.js';
import { requirePrerequisites, skipBecause } from '../support/prerequisites.js';

const run = promisify(execFile);
const CTRL = path.join(PACKAGE_ROOT, 'controller');
type Obj = Record<string, any>;

function loadDocs(file: string): Obj[] {
  return yaml.loadAll(readFileSync(file, 'utf8')).filter(Boolean) as Obj[];
}

function allObjects(): Obj[] {
  const files = readdirSync(CTRL).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
  return files.flatMap((f) => loadDocs(path.join(CTRL, f)));
}

const byKind = (kind: string) => allObjects().filter((o) => o.kind === kind);

async function which(bin: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${bin}`]);
    return true;
  } catch {
    return false;
  }
}

/** The RBAC (apiGroup, resource, verb) of one request the client made. */
function rbacOf(r: { method: string; path: string; query: URLSearchParams }): string {
  let m: RegExpExecArray | null;
  if ((m = /^\/apis\/([^/]+)\/[^/]+\/(?:namespaces\/[^/]+\/)?([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(r.path))) {
    const [, group, resource, name, sub] = m;
    const res = sub ? `${resource}/${sub}` : resource!;
    const verb =
      r.method === 'GET'
        ? name
          ? 'get'
          : r.query.get('watch') === 'true'
            ? 'watch'
            : 'list'
        : { PUT: 'update', PATCH: 'patch', POST: 'create', DELETE: 'delete' }[r.method]!;
    return `${group}|${res}|${verb}`;
  }
  if (r.path === '/api/v1/namespaces') return `|namespaces|${r.query.get('watch') === 'true' ? 'watch' : 'list'}`;
  if ((m = /^\/api\/v1\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+))?$/.exec(r.path))) {
    const verb = r.method === 'GET' ? (m[2] ? 'get' : 'list') : { PUT: 'update', PATCH: 'patch', POST: 'create', DELETE: 'delete' }[r.method]!;
    return `|${m[1]}|${verb}`;
  }
  throw new Error(`unmapped request ${r.method} ${r.path}`);
}

function allowed(role: Obj, key: string): boolean {
  const [group, resource, verb] = key.split('|');
  return role.rules.some((rule: Obj) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb));
}

describe('kube: controller/ deployment', () => {
  it('every YAML parses and validates against the official Kubernetes schemas', () => {
    const objs = allObjects();
    const models: Record<string, new (o: never) => { validate(): void }> = {
      DaemonSet,
      Namespace,
      ServiceAccount,
      ClusterRole,
      ClusterRoleBinding,
      CustomResourceDefinition,
      ConfigMap,
      ValidatingAdmissionPolicy,
      ValidatingAdmissionPolicyBinding,
    };
    assert.deepEqual(objs.map((o) => o.kind).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'ConfigMap',
      'ConfigMap',
      'DaemonSet',
      'Namespace',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of objs) new models[o.kind]!(o as never).validate();
  });

  it('kustomization lists files that exist (and includes the CRD through ../crds)', () => {
    const k = loadDocs(path.join(CTRL, 'kustomization.yaml'))[0]!;
    for (const r of k.resources as string[]) {
      const p = path.join(CTRL, r);
      assert.ok(existsSync(p), `${r} exists`);
      if (statSync(p).isDirectory()) {
        const sub = loadDocs(path.join(p, 'kustomization.yaml'))[0]!;
        for (const s of sub.resources as string[]) assert.ok(existsSync(path.join(p, s)), `${r}/${s} exists`);
      }
    }
    assert.ok((k.resources as string[]).includes('../crds'));
    const ds = byKind('DaemonSet')[0]!;
    const image = ds.spec.template.spec.containers[0].image as string;
    assert.ok(
      (k.images as Obj[]).some((i) => image.startsWith(`${i.name}:`)),
      'the images entry names the DaemonSet image',
    );
  });

  it('kubectl kustomize builds it into CRD, namespace, RBAC and DaemonSet', async function () {
    // kubectl is optional on a node (setup.sh does not install it): a kustomize build is a bonus check.
    if (!(await which('kubectl'))) skipBecause(this, 'kubectl not installed');
    const { stdout } = await run('kubectl', ['kustomize', CTRL], { maxBuffer: 10 * 2 ** 20 });
    const objs = yaml.loadAll(stdout) as Obj[];
    assert.deepEqual(objs.map((o) => o.kind).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'ConfigMap',
      'ConfigMap',
      'CustomResourceDefinition',
      'DaemonSet',
      'Namespace',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of objs)
      if (o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace') assert.equal(o.metadata.labels['app.kubernetes.io/part-of'], 'acetate');
  });

  it('the DaemonSet gives acetate what it needs: privileges, NODE_NAME, the state and run dirs, probes on the metrics port', () => {
    const ds = byKind('DaemonSet')[0]!;
    const ns = byKind('Namespace')[0]!;
    const sa = byKind('ServiceAccount')[0]!;
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(ds.metadata.namespace, ns.metadata.name);
    assert.equal(sa.metadata.namespace, ns.metadata.name);
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(pod.serviceAccountName, sa.metadata.name);
    assert.equal(pod.hostPID, true);
    assert.equal(pod.hostNetwork, true);
    assert.equal(c.securityContext.privileged, true);
    assert.deepEqual(c.args.slice(0, 2), ['run', '--kube']);
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    assert.deepEqual(env.NODE_NAME.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.equal(env.ACETATE_HOST_CGROUPNS.value, 'true');
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, m]));
    const vols = Object.fromEntries(pod.volumes.map((v: Obj) => [v.name, v]));
    const state = mounts[env.ACETATE_STATE_DIR.value];
    assert.ok(state, 'the state dir is mounted');
    assert.equal(state.mountPropagation, 'Bidirectional');
    assert.equal(vols[state.name].hostPath.path, '/var/lib/acetate');
    const run = mounts[env.ACETATE_RUN_DIR.value];
    assert.ok(run, 'the run dir is mounted');
    assert.equal(vols[run.name].hostPath.path, '/run/acetate', "the node's /run: emptied by a reboot, kept across pod restarts");
    assert.equal(vols[mounts['/sys/fs/cgroup'].name].hostPath.path, '/sys/fs/cgroup');
    const hostRoot = mounts[env.ACETATE_HOST_ROOT.value];
    assert.equal(vols[hostRoot.name].hostPath.path, '/');
    assert.equal(hostRoot.readOnly, true);
    const addr = c.args[c.args.indexOf('--metrics-addr') + 1] as string;
    const port = Number(addr.split(':').pop());
    for (const [probe, p] of [
      ['livenessProbe', '/healthz'],
      ['readinessProbe', '/readyz'],
      ['startupProbe', '/healthz'],
    ] as const) {
      assert.equal(c[probe].httpGet.path, p);
      assert.equal(c[probe].httpGet.port, port, `${probe} on the metrics port`);
      assert.equal(c[probe].httpGet.host, addr.split(':')[0], `${probe} where acetate listens`);
    }
    assert.ok(
      pod.tolerations.some((t: Obj) => t.operator === 'Exists'),
      'runs on every node',
    );
  });

  it('the ClusterRole grants every verb the code uses, and only those (least privilege)', async function () {
    this.timeout(30_000);
    const role = byKind('ClusterRole')[0]!;
    const binding = byKind('ClusterRoleBinding')[0]!;
    const sa = byKind('ServiceAccount')[0]!;
    assert.equal(binding.roleRef.name, role.metadata.name);
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);

    // Everything the kube source does, against the fake: list, watch, add finalizer, status
    // (with a 409 re-read), events (new and repeated), remove finalizer, namespaces' labels
    // (list, watch: the security levels).
    const { fake, api } = await startFake();
    const security = parseInlineSetting('default=privileged', 'test', { hostUsersByDefault: false });
    const source = new KubeSource({ node: NODE, api, capacity: { security } });
    try {
      fake.create(containerObj('web'));
      await source.start(() => undefined);
      await stepLikeTheLoop(() => source.finalizers.publish('default/web'));
      await waitFor(() => source.snapshot().containers.has('default/web'), { what: 'web desired' });
      const desired = source.snapshot().containers.get('default/web')!;
      fake.failNext({ method: 'PUT', path: /\/status$/ }, 409);
      const status = computeStatus({ key: 'default/web', desired, node: NODE, now: Date.now() });
      assert.deepEqual(
        (await stepLikeTheLoop(() => source.statusSink.publish('default/web', status))).map((d) => d.action),
        ['retry', 'forget'],
        'the 409 is retried at once, re-read',
      );
      source.eventRecorder.record('default/web', { type: 'Normal', reason: 'Created', message: 'x' });
      source.eventRecorder.record('default/web', { type: 'Normal', reason: 'Created', message: 'x' });
      await source.eventRecorder.flush();
      fake.remove('default', 'web');
      await waitFor(() => source.informer.get('default/web')?.metadata.deletionTimestamp, { what: 'deletion seen' });
      await stepLikeTheLoop(() => source.finalizers.remove('default/web'));
      await waitFor(() => !fake.get('default', 'web'), { what: 'finalizer removed' });
    } finally {
      await source.stop();
      await fake.close();
    }
    const used = [...new Set(fake.requests.map(rbacOf))].sort();
    assert.deepEqual(
      [...used].sort(),
      [
        '|events|create',
        '|events|patch',
        'acetate.dev|containers/status|update',
        'acetate.dev|containers|get',
        'acetate.dev|containers|list',
        'acetate.dev|containers|patch',
        'acetate.dev|containers|watch',
        '|namespaces|list',
        '|namespaces|watch',
      ].sort(),
    );
    for (const u of used) assert.ok(allowed(role, u), `ClusterRole allows ${u}`);
    // nothing beyond what the brief and the code call for
    const granted = role.rules.flatMap((r: Obj) =>
      r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}|${res}|${v}`))),
    );
    const extra = granted.filter((g: string) => !used.includes(g));
    assert.deepEqual(extra.sort(), ['acetate.dev|containers/finalizers|update', 'acetate.dev|containers/status|patch', 'acetate.dev|containers|update']);
    assert.ok(!granted.some((g: string) => g.includes('*')));
    assert.equal(FINALIZER, 'acetate.dev/cleanup');
  });

  it('the Dockerfile copies files that exist, and its entrypoint and CMD match the DaemonSet', () => {
    const text = readFileSync(path.join(CTRL, 'Dockerfile'), 'utf8');
    const lines = text
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const froms = lines.filter((l) => l.startsWith('FROM '));
    assert.equal(froms.length, 2, 'a build stage and a runtime stage');
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from='))) {
      const parts = l.split(/\s+/).slice(1);
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(path.join(PACKAGE_ROOT, src)), `COPY source ${src} exists`);
    }
    // what the runtime stage takes from the build stage is produced there
    assert.match(text, /COPY --from=build \/src\/dist\/src\//);
    // bin/acetate loads the bundle: it is built before the prune removes esbuild, and copied.
    assert.match(text, /node scripts\/bundle\.mjs[^]*npm prune/);
    assert.match(text, /COPY --from=build \/src\/dist\/cli\/ \.\/dist\/cli\//);
    const tsconfig = JSON.parse(readFileSync(path.join(CTRL, 'tsconfig.image.json'), 'utf8'));
    assert.equal(path.resolve(CTRL, tsconfig.compilerOptions.outDir), path.join(PACKAGE_ROOT, 'dist'));
    assert.equal(path.resolve(CTRL, tsconfig.compilerOptions.rootDir), PACKAGE_ROOT);
    const entry = /ENTRYPOINT \["([^"]+)"\]/.exec(text)![1];
    assert.match(text, new RegExp(`COPY controller/entrypoint.sh ${entry}`));
    assert.match(text, /CMD \["run", "--kube"\]/);
    assert.match(text, /apt-get install[^\n]*\brunc\b[^\n]*\bconmon\b[^\n]*\butil-linux\b/);
    assert.ok(statSync(path.join(CTRL, 'entrypoint.sh')).mode & 0o111, 'entrypoint.sh is executable');
    const ds = byKind('DaemonSet')[0]!;
    assert.equal(ds.spec.template.spec.containers[0].command, undefined, 'the DaemonSet keeps the image entrypoint');
  });

  it('the image build compiles src/ (tsc -p controller/tsconfig.image.json)', async function () {
    this.timeout(120_000);
    await run(
      process.execPath,
      [path.join(PACKAGE_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(CTRL, 'tsconfig.image.json'), '--noEmit'],
      { cwd: PACKAGE_ROOT },
    );
  });

  describe('entrypoint.sh', () => {
    const entry = path.join(CTRL, 'entrypoint.sh');
    const env = { ...process.env, ACETATE_HOME: PACKAGE_ROOT };

    it('is valid sh and runs acetate with its arguments', async () => {
      await run('sh', ['-n', entry]);
      const { stdout } = await run('sh', [entry, '--help'], { env });
      assert.match(stdout, /Usage: acetate/);
    });

    it('with ACETATE_HOST_CGROUPNS=true: refuses to run without hostPID, and joins the node cgroup namespace through nsenter', async function () {
      const missing = [];
      if (process.getuid?.() !== 0) missing.push('root');
      for (const b of ['unshare', 'nsenter']) if (!(await which(b))) missing.push(b);
      requirePrerequisites(missing, 'the entrypoint test with ACETATE_HOST_CGROUPNS');
      const hostEnv = { ...env, ACETATE_HOST_CGROUPNS: 'true' };
      // PID 1 of its own PID namespace = no hostPID
      await assert.rejects(run('unshare', ['--pid', '--fork', 'sh', entry, '--help'], { env: hostEnv }), (e: { stderr: string }) =>
        /needs hostPID: true/.test(e.stderr),
      );
      // in another cgroup namespace: goes through nsenter --target PID --cgroup, then runs acetate
      // (PID is the node's 1 in the DaemonSet; here this test's own process, whose cgroup
      // namespace is the one `unshare --cgroup` left)
      const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-entry-'));
      try {
        const marker = path.join(dir, 'nsenter-args');
        await writeFile(path.join(dir, 'nsenter'), `#!/bin/sh\necho "$@" >> ${marker}\nexec /usr/bin/nsenter "$@"\n`);
        await chmod(path.join(dir, 'nsenter'), 0o755);
        const { stdout } = await run('unshare', ['--cgroup', 'sh', entry, '--help'], {
          env: { ...hostEnv, PATH: `${dir}:${process.env.PATH}`, ACETATE_NSENTER_TARGET: String(process.pid) },
        });
        assert.match(stdout, /Usage: acetate/);
        assert.match(readFileSync(marker, 'utf8'), new RegExp(`^--target ${process.pid} --cgroup -- .*entrypoint\\.sh --help$`, 'm'));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
