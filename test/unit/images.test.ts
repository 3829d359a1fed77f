/** The pure parts of images: references, pull policies, Kubernetes' process rules, plan wording, registries.conf, platform choice. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { validateManifest } from '../../src/api/validate.js';
import { effectiveProcess, resolveUser } from '../../src/images/process.js';
import { defaultPullPolicy, formatReference, parseReference } from '../../src/api/image-reference.js';
import { insecureRegistries } from '../../src/images/registries-conf.js';
import { platformDigest } from '../../src/images/skopeo.js';
import { describeImageChange } from '../../src/plan/image-change.js';
import { plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';
import { overlayRootMount } from '../../src/runtime/runc/oci-config.js';
import { testSpec } from '../support/test-spec.js';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;

describe('images (pure)', () => {
  it('normalizes references as Docker and Kubernetes do', () => {
    assert.equal(formatReference(parseReference('busybox')), 'docker.io/library/busybox:latest');
    assert.equal(formatReference(parseReference('debian:12')), 'docker.io/library/debian:12');
    assert.equal(formatReference(parseReference('team/app:1')), 'docker.io/team/app:1');
    assert.equal(formatReference(parseReference('127.0.0.1:5000/a/b:c')), '127.0.0.1:5000/a/b:c');
    assert.equal(formatReference(parseReference(`localhost/app@${D1}`)), `localhost/app@${D1}`);
    assert.equal(formatReference(parseReference(`reg.example.com/app:1@${D1}`)), `reg.example.com/app:1@${D1}`);
    for (const bad of ['', 'UPPER/case', 'app@sha256:short', 'app:bad tag', 'a//b'])
      assert.throws(() => parseReference(bad), /image reference|not a|valid/, bad);
  });

  it('defaults imagePullPolicy as Kubernetes: Always for :latest or no tag, IfNotPresent otherwise', () => {
    assert.equal(defaultPullPolicy(parseReference('busybox')), 'Always');
    assert.equal(defaultPullPolicy(parseReference('busybox:latest')), 'Always');
    assert.equal(defaultPullPolicy(parseReference('busybox:1.36')), 'IfNotPresent');
    assert.equal(defaultPullPolicy(parseReference(`busybox@${D1}`)), 'IfNotPresent');
  });

  it('command overrides Entrypoint (and drops Cmd), args override Cmd, image Env under the manifest, WorkingDir', () => {
    const image = { Entrypoint: ['/ep'], Cmd: ['c1'], Env: ['A=image', 'B=image'], WorkingDir: '/w' };
    const spec = (o: Partial<{ command: string[]; args: string[]; env: { name: string; value: string }[]; workingDir: string }>) => ({
      command: [],
      args: [],
      env: [],
      workingDir: '',
      ...o,
    });
    assert.deepEqual(effectiveProcess(spec({}), image).args, ['/ep', 'c1']);
    assert.deepEqual(effectiveProcess(spec({ args: ['x'] }), image).args, ['/ep', 'x']);
    assert.deepEqual(effectiveProcess(spec({ command: ['/bin/true'] }), image).args, ['/bin/true']);
    assert.deepEqual(effectiveProcess(spec({ command: ['/c'], args: ['y'] }), image).args, ['/c', 'y']);
    assert.deepEqual(effectiveProcess(spec({ env: [{ name: 'B', value: 'manifest' }] }), image).env, [
      { name: 'A', value: 'image' },
      { name: 'B', value: 'manifest' },
    ]);
    assert.equal(effectiveProcess(spec({}), image).cwd, '/w');
    assert.equal(effectiveProcess(spec({ workingDir: '/m' }), image).cwd, '/m');
    assert.equal(effectiveProcess(spec({ command: ['/x'] }), {}).cwd, '/', 'no WorkingDir anywhere: /');
    assert.throws(() => effectiveProcess(spec({}), {}), /nothing to run/);
  });

  it("resolves the image's User by number or by name in its passwd/group", () => {
    const files = { passwd: 'root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n', group: 'root:x:0:\nstaff:x:50:\n' };
    assert.deepEqual(resolveUser(undefined, files), { uid: 0, gid: 0 });
    assert.deepEqual(resolveUser('1000', files), { uid: 1000, gid: 0 });
    assert.deepEqual(resolveUser('33', files), { uid: 33, gid: 34 });
    assert.deepEqual(resolveUser('www', files), { uid: 33, gid: 34 });
    assert.deepEqual(resolveUser('www:staff', files), { uid: 33, gid: 50 });
    assert.deepEqual(resolveUser('1000:2000', {}), { uid: 1000, gid: 2000 });
    assert.throws(() => resolveUser('nobody', files), /no user 'nobody'/);
  });

  it('validates: exactly one of template and image; command optional only with an image', () => {
    const m = (spec: Record<string, unknown>) => ({ apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name: 'x' }, spec });
    const issues = (spec: Record<string, unknown>) => {
      const r = validateManifest(m(spec));
      return r.ok ? [] : r.issues.map((i) => `${i.field}: ${i.message}`);
    };
    assert.deepEqual(issues({ image: 'debian:12' }), []);
    assert.deepEqual(issues({ image: 'debian:12', imagePullPolicy: 'Always', command: ['sh'] }), []);
    assert.deepEqual(issues({ image: 'debian:12', template: 'host', command: ['sh'] }), ['spec.image: give exactly one of template and image, not both']);
    assert.deepEqual(issues({ command: ['sh'] }), ['spec.template: required field is missing (or give an image)']);
    assert.deepEqual(issues({ template: 'host' }), ['spec.command: required field is missing']);
    assert.deepEqual(issues({ template: 'host', command: ['sh'], imagePullPolicy: 'Always' }), ['spec.imagePullPolicy: applies to an image only']);
    assert.deepEqual(issues({ image: 'debian:12', imagePullPolicy: 'Sometimes' }), [
      "spec.imagePullPolicy: 'Sometimes' is not one of Always, IfNotPresent, Never",
    ]);
    assert.match(issues({ image: 'Debian:12' }).join(), /spec\.image: .*not/);
  });

  it('plans a new digest of the same image as a replace that keeps the private area, saying both digests', () => {
    const m = {
      apiVersion: 'acetate.dev/v1alpha1',
      kind: 'Container',
      metadata: { name: 'web' },
      spec: { image: 'reg.example.com/app:1' },
    } as ContainerManifest;
    const d = normalizeManifest(m, { kind: 'file', file: '/m.yaml', line: 1 });
    const had = { ...d.spec, image: { ref: d.spec.image!.ref, digest: D1 } };
    const want = { ...d.spec, image: { ref: d.spec.image!.ref, digest: D2 } };
    const actual = {
      key: d.key,
      namespace: 'default',
      name: 'web',
      id: 'default_web',
      applied: { namespace: 'default', name: 'web', spec: had, specHash: 'x', source: d.source, createdAt: '' },
      process: { state: 'running' as const, pid: 1 },
      limits: {},
      restartCount: 0,
    };
    const p = plan({ desired: new Map([[d.key, { ...d, spec: want }]]), actual: new Map([[d.key, actual]]), complete: true });
    assert.equal(p.actions.length, 1);
    const a = p.actions[0]!;
    assert.equal(a.kind, 'replace');
    assert.equal(a.kind === 'replace' && a.discardPrivateArea, false);
    assert.match(
      renderPlan(p),
      new RegExp(`-/\\+ replace\\s+default/web\\s+image reg.example.com/app:1: image digest ${D1} → ${D2}: the private area is kept`),
    );
    // Another repository is another base OS: the private area goes, and the plan says so.
    const other = describeImageChange(had, { ...want, image: { ref: 'reg.example.com/other:1', digest: D2 } }, ['image'])!;
    assert.equal(other.discard, true);
    assert.match(other.reason, /the private area will be deleted/);
    const fromTemplate = describeImageChange(testSpec(), want, ['template', 'image'])!;
    assert.equal(fromTemplate.discard, true);
    // A policy change alone is recorded, not replaced.
    const policy = plan({
      desired: new Map([[d.key, { ...d, spec: { ...had, imagePullPolicy: 'IfNotPresent' as const } }]]),
      actual: new Map([[d.key, actual]]),
      complete: true,
    });
    assert.deepEqual(
      policy.actions.map((x) => x.kind),
      ['configure'],
    );
    // Held (the image cannot be resolved): left alone with the reason, never destroyed.
    const held = plan({ desired: new Map(), actual: new Map([[d.key, actual]]), heldKeys: new Map([[d.key, 'ErrImagePull: x']]), complete: true });
    assert.deepEqual(held.actions, []);
    assert.deepEqual(held.skipped, [{ key: d.key, reason: 'ErrImagePull: x' }]);
  });

  it('reads insecure registries from registries.conf; picks linux/amd64 from an index', () => {
    const conf =
      '# c\nunqualified-search-registries = ["docker.io"]\n[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n\n[[registry]]\nlocation="quay.io"\n[[registry]]\nprefix = "example.com/team"\nlocation = "mirror.local"\ninsecure=true\n';
    assert.deepEqual(insecureRegistries(conf), ['127.0.0.1:5000', 'example.com/team']);
    const manifest = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}';
    assert.equal(platformDigest(manifest, 'x'), `sha256:${createHash('sha256').update(manifest).digest('hex')}`);
    const index = JSON.stringify({
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { digest: D1, platform: { os: 'linux', architecture: 'arm64' } },
        { digest: D2, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    });
    assert.equal(platformDigest(index, 'x'), D2);
    assert.throws(
      () => platformDigest(JSON.stringify({ manifests: [{ digest: D1, platform: { os: 'linux', architecture: 's390x' } }] }), 'x'),
      /no linux\/amd64 image/,
    );
  });

  it('the overlay takes every layer, topmost first, and refuses options longer than a page', () => {
    const m = overlayRootMount({ lower: ['/l/top', '/l/base'], upper: '/u', work: '/w' });
    assert.deepEqual(m.options, ['lowerdir=/l/top:/l/base', 'upperdir=/u', 'workdir=/w']);
    const many = Array.from({ length: 60 }, (_, i) => `/var/lib/acetate/images/layers/${String(i).padStart(64, '0')}`);
    assert.throws(() => overlayRootMount({ lower: many, upper: '/u', work: '/w' }), /do not fit in overlayfs' mount options/);
  });
});
