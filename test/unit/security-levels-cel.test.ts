/* eslint-disable @typescript-eslint/no-explicit-any -- untyped YAML of the policy */
/**
 * controller/security-levels.yaml (the ValidatingAdmissionPolicy the API server runs) and
 * checkSecurityLevel (what each node runs) must give the same verdict: its CEL expressions are run
 * here by a CEL implementation (@bufbuild/cel), bound as the API server binds them (object,
 * namespaceObject, params, variables; integers as CEL int), on hand-written samples and on
 * random Containers, and the rules each refuses must be the rules checkSecurityLevel names, for
 * every enforce label (absent, each level, a typo). The documents are also checked against the
 * official Kubernetes schemas (kubernetes-models).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import fc from 'fast-check';
import { parse, run } from '@bufbuild/cel';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { DEFAULT_CAPABILITIES } from '../../src/api/capabilities.js';
import { validateManifest } from '../../src/api/validate.js';
import { checkSecurityLevel, type NodeSecurityPolicy } from '../../src/policy/levels.js';
import { levelLabel, namespaceLevels } from '../../src/policy/namespace-labels.js';

const docs = yaml.loadAll(readFileSync(path.join(PACKAGE_ROOT, 'controller', 'security-levels.yaml'), 'utf8')).filter(Boolean) as any[];
const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy');
const paramsOf = (name: string) => docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === name);
/** What the cluster knows of a node: no allowed host path, and the user-namespace default is not its business (only hostUsers: true is refused). */
const CLUSTER_VIEW: NodeSecurityPolicy = { allowedHostPaths: [], hostUsersByDefault: false };

function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  return v;
}

/** The rules the policy refuses object with, under binding `params` (as the API server evaluates it). */
function celRefusals(object: unknown, nsLabels: Record<string, string> | undefined, params: any): { rules: string[]; messages: string[] } {
  const ctx: Record<string, unknown> = {
    object: celValue(object),
    namespaceObject: { metadata: { name: 'ns', ...(nsLabels ? { labels: nsLabels } : {}) } },
    params: celValue(params),
  };
  const variables: Record<string, unknown> = {};
  for (const v of policy.spec.variables) variables[v.name] = run(v.expression, { ...ctx, variables } as never);
  const rules: string[] = [];
  const messages: string[] = [];
  for (const val of policy.spec.validations) {
    const ok = run(val.expression, { ...ctx, variables } as never);
    assert.equal(typeof ok, 'boolean', `${val.expression} gave ${String(ok)}`);
    if (ok) continue;
    const msg = run(val.messageExpression, { ...ctx, variables } as never) as string;
    messages.push(msg);
    rules.push(/\(rule (\w+)\)/.exec(msg)![1]!);
  }
  return { rules: rules.sort(), messages };
}

function container(spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'acetate.dev/v1alpha1',
    kind: 'Container',
    metadata: { name: 'c', namespace: 'ns' },
    spec: { template: 'host', command: ['/bin/true'], ...spec },
  };
}

/** The rules checkSecurityLevel names (once each: it reports every field, CEL every rule). */
const nodeRules = (obj: Record<string, unknown>, labels: Record<string, string> | undefined) =>
  [...new Set(checkSecurityLevel(obj.spec, namespaceLevels(labels, 'baseline').enforce, CLUSTER_VIEW).map((v) => v.rule))].sort();

const LABELS: (Record<string, string> | undefined)[] = [
  undefined,
  { other: 'x' },
  ...['privileged', 'baseline', 'restricted', 'Baseline', 'latest'].map((l) => ({ [levelLabel('enforce')]: l })),
];

const SAMPLES: Record<string, Record<string, unknown>> = {
  plain: {},
  'mounts the node /etc': { mounts: [{ hostPath: '/etc', containerPath: '/node-etc' }] },
  'mounts read-only': { mounts: [{ hostPath: '/srv', containerPath: '/srv', readOnly: true }] },
  'adds SYS_ADMIN': { securityContext: { capabilities: { add: ['SYS_ADMIN'] } } },
  'adds CAP_CHOWN': { securityContext: { capabilities: { add: ['CAP_CHOWN'] } } },
  // Both need hostUsers: true (validation: neither works in a user namespace), itself a baseline refusal.
  'host network': { network: 'host', securityContext: { hostUsers: true } },
  privileged: { securityContext: { privileged: true, hostUsers: true } },
  unconfined: { securityContext: { seccompProfile: { type: 'Unconfined' } } },
  'hostUsers true': { securityContext: { hostUsers: true } },
  'restricted-compliant': {
    securityContext: { runAsNonRoot: true, runAsUser: 1000, hostUsers: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
    template: 'imported',
  },
  'runAsUser 0': { securityContext: { runAsNonRoot: true, runAsUser: 0, capabilities: { drop: ['ALL'] } } },
  'noNewPrivileges false': { securityContext: { noNewPrivileges: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } } },
};

describe('security levels: the ValidatingAdmissionPolicy and checkSecurityLevel agree', function () {
  this.timeout(60_000); // the CEL implementation parses each expression at each run (~4 ms a run)
  it('ships valid Kubernetes objects: the policy, its parameters and three bindings (enforce: Deny, warn: Warn, audit: Audit)', () => {
    for (const d of docs) {
      const Model = { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ConfigMap }[d.kind as string] as any;
      assert.ok(Model, `unexpected kind ${d.kind}`);
      new Model(d).validate();
    }
    for (const e of [...policy.spec.variables, ...policy.spec.validations]) {
      assert.doesNotThrow(() => parse(e.expression), e.expression);
      if (e.messageExpression) assert.doesNotThrow(() => parse(e.messageExpression));
    }
    const bindings = docs.filter((d) => d.kind === 'ValidatingAdmissionPolicyBinding');
    assert.deepEqual(
      bindings.map((b) => [b.spec.policyName, b.spec.validationActions.join(), paramsOf(b.spec.paramRef.name).data.label]),
      [
        ['acetate-security-levels', 'Deny', levelLabel('enforce')],
        ['acetate-security-levels', 'Warn', levelLabel('warn')],
        ['acetate-security-levels', 'Audit', levelLabel('audit')],
      ],
    );
    assert.equal(paramsOf('acetate-security-enforce').data.default, 'baseline', 'an unlabelled namespace is baseline, as on the node');
    // The capability list written in CEL is the default set, with and without CAP_.
    const listed = [...policy.spec.validations[2].expression.matchAll(/'((?:CAP_)?[A-Z_]+)'/g)].map((m: RegExpMatchArray) => m[1]);
    assert.deepEqual(new Set(listed), new Set(DEFAULT_CAPABILITIES.flatMap((c) => [c, c.replace(/^CAP_/, '')])));
  });

  it('refuses the node /etc, SYS_ADMIN and the host network under baseline, naming the rule; allows them under privileged', () => {
    const enforce = paramsOf('acetate-security-enforce');
    for (const [spec, ...want] of [
      [SAMPLES['mounts the node /etc']!, 'hostPathVolumes'],
      [SAMPLES['adds SYS_ADMIN']!, 'capabilities_baseline'],
      [SAMPLES['host network']!, 'hostNamespaces', 'hostUsers'],
    ] as const) {
      const obj = container(spec);
      const r = celRefusals(obj, { [levelLabel('enforce')]: 'baseline' }, enforce);
      assert.deepEqual(r.rules, want);
      assert.match(r.messages[0]!, new RegExp(`forbidden by security level baseline \\(rule ${want[0]}\\)`));
      assert.deepEqual(celRefusals(obj, undefined, enforce).rules, want, 'unlabelled: baseline');
      assert.deepEqual(celRefusals(obj, { [levelLabel('enforce')]: 'privileged' }, enforce).rules, []);
      assert.deepEqual(nodeRules(obj, { [levelLabel('enforce')]: 'baseline' }), want);
    }
  });

  it('gives the same rules as checkSecurityLevel on every sample, for every enforce label', () => {
    const enforce = paramsOf('acetate-security-enforce');
    for (const [name, spec] of Object.entries(SAMPLES)) {
      const obj = container(spec);
      assert.ok(validateManifest(obj).ok, `sample ${name} is a valid Container`);
      for (const labels of LABELS) assert.deepEqual(celRefusals(obj, labels, enforce).rules, nodeRules(obj, labels), `${name} with ${JSON.stringify(labels)}`);
    }
    // restricted-compliant passes restricted; plain fails it on exactly the non-root and capability rules.
    assert.deepEqual(celRefusals(container(SAMPLES['restricted-compliant']!), { [levelLabel('enforce')]: 'restricted' }, enforce).rules, []);
    assert.deepEqual(celRefusals(container({}), { [levelLabel('enforce')]: 'restricted' }, enforce).rules, ['capabilities_restricted', 'runAsNonRoot']);
  });

  it('warn and audit bindings read their own label and say nothing for an unlabelled namespace', () => {
    const obj = container(SAMPLES['adds SYS_ADMIN']!);
    assert.deepEqual(celRefusals(obj, undefined, paramsOf('acetate-security-warn')).rules, []);
    assert.deepEqual(celRefusals(obj, { [levelLabel('warn')]: 'baseline' }, paramsOf('acetate-security-warn')).rules, ['capabilities_baseline']);
    assert.deepEqual(celRefusals(obj, { [levelLabel('audit')]: 'restricted' }, paramsOf('acetate-security-audit')).rules, [
      'capabilities_baseline',
      'capabilities_restricted',
      'runAsNonRoot',
    ]);
  });

  it('agrees with checkSecurityLevel on random Containers (property)', () => {
    const enforce = paramsOf('acetate-security-enforce');
    const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const caps = fc.subarray(['SYS_ADMIN', 'NET_RAW', 'CHOWN', 'CAP_KILL', 'NET_BIND_SERVICE', 'CAP_NET_BIND_SERVICE']);
    const mount = fc.record({ hostPath: fc.constantFrom('/etc', '/srv/data', '/'), containerPath: fc.constantFrom('/a', '/b'), readOnly: opt(fc.boolean()) });
    const spec = fc.record({
      network: opt(fc.constantFrom('none', 'host', 'bridge')),
      mounts: opt(fc.uniqueArray(mount, { maxLength: 2, selector: (m) => m.containerPath })),
      securityContext: opt(
        fc.record(
          {
            privileged: opt(fc.boolean()),
            noNewPrivileges: opt(fc.boolean()),
            capabilities: opt(fc.record({ add: opt(caps), drop: opt(fc.subarray(['ALL', 'CHOWN'])) }, { requiredKeys: [] })),
            seccompProfile: opt(fc.record({ type: fc.constantFrom('RuntimeDefault', 'Unconfined') })),
            hostUsers: opt(fc.boolean()),
            runAsNonRoot: opt(fc.boolean()),
            runAsUser: opt(fc.constantFrom(0, 1000)),
          },
          { requiredKeys: [] },
        ),
      ),
    });
    const strip = (o: unknown): unknown =>
      Array.isArray(o)
        ? o.map(strip)
        : o && typeof o === 'object'
          ? Object.fromEntries(
              Object.entries(o)
                .filter(([, v]) => v !== undefined)
                .map(([k, v]) => [k, strip(v)]),
            )
          : o;
    fc.assert(
      fc.property(spec, fc.constantFrom(...LABELS), (s, labels) => {
        const obj = container(strip(s) as Record<string, unknown>);
        assert.deepEqual(celRefusals(obj, labels, enforce).rules, nodeRules(obj, labels));
      }),
      { numRuns: 200 },
    );
  });
});
