/**
 * registries.conf short-name aliases: parsing the [aliases] table, resolving a short name (tag and
 * digest kept), the file order (node file, drop-ins in lexical order, then $ACETATE_REGISTRIES_CONF;
 * later wins), and the docker.io fallback.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { validateManifest } from '../../src/api/validate.js';
import { normalizeReference } from '../../src/api/image-reference.js';
import { isShortName, parseAliases, registriesConfFiles, resolveShortName } from '../../src/api/image-short-names.js';

const CONF = `
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "example.com"   # not an alias
[aliases]
  # comment
  "myapp" = "127.0.0.1:5000/team/myapp"
  "team/app" = "registry.example.com/team/app"  # trailing comment
  'fedora' = 'registry.fedoraproject.org/fedora'
[[registry]]
location = "other.example"
`;

describe('registries.conf short-name aliases', () => {
  it('reads only the [aliases] table', () => {
    const a = parseAliases(CONF);
    assert.deepEqual(
      [...a.entries()],
      [
        ['myapp', '127.0.0.1:5000/team/myapp'],
        ['team/app', 'registry.example.com/team/app'],
        ['fedora', 'registry.fedoraproject.org/fedora'],
      ],
    );
  });

  it('refuses an alias to a short name or with a tag, naming the file and line', () => {
    assert.throws(() => parseAliases('[aliases]\n"x" = "busybox"\n', '/etc/x.conf'), /\/etc\/x\.conf:2: \[aliases\]: 'busybox' must be a fully qualified/);
    assert.throws(() => parseAliases('[aliases]\n"x" = "quay.io/a/b:1"\n', 'f'), /f:2: .*without a tag or digest/);
    assert.throws(() => parseAliases('[aliases]\n"quay.io/x" = "quay.io/a/b"\n', 'f'), /'quay\.io\/x' is not a short name/);
    assert.throws(() => parseAliases('[aliases]\nnonsense\n', 'f'), /f:2: \[aliases\]: expected/);
  });

  it('resolves short names through the aliases, keeping the tag or digest; qualified names are untouched', () => {
    const a = parseAliases(CONF);
    assert.equal(resolveShortName('myapp', a), '127.0.0.1:5000/team/myapp');
    assert.equal(resolveShortName('myapp:1', a), '127.0.0.1:5000/team/myapp:1');
    const d = `sha256:${'a'.repeat(64)}`;
    assert.equal(resolveShortName(`myapp@${d}`, a), `127.0.0.1:5000/team/myapp@${d}`);
    assert.equal(resolveShortName('team/app:2', a), 'registry.example.com/team/app:2');
    assert.equal(normalizeReference(resolveShortName('myapp', a)), '127.0.0.1:5000/team/myapp:latest');
    // No alias: docker.io, as Kubernetes does.
    assert.equal(normalizeReference(resolveShortName('busybox:1.36', a)), 'docker.io/library/busybox:1.36');
    assert.equal(resolveShortName('quay.io/myapp:1', a), 'quay.io/myapp:1');
    assert.equal(resolveShortName('localhost/myapp', a), 'localhost/myapp');
    assert.ok(isShortName('team/app') && !isShortName('127.0.0.1:5000/app') && !isShortName('localhost/app'));
  });

  it('reads the node file, its drop-ins in lexical order, then the override file (later wins)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-aliases-'));
    try {
      await mkdir(path.join(dir, 'd'));
      for (const f of ['b.conf', 'a.conf', 'c.txt']) await writeFile(path.join(dir, 'd', f), '');
      assert.deepEqual(registriesConfFiles('/o.conf', path.join(dir, 'd'), '/main.conf'), [
        '/main.conf',
        path.join(dir, 'd', 'a.conf'),
        path.join(dir, 'd', 'b.conf'),
        '/o.conf',
      ]);
      assert.deepEqual(registriesConfFiles(undefined, path.join(dir, 'missing'), '/main.conf'), ['/main.conf']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a manifest's short name is qualified through $ACETATE_REGISTRIES_CONF; a broken alias table is that manifest's problem", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-aliases-'));
    const saved = process.env.ACETATE_REGISTRIES_CONF;
    const manifest = (image: string) => ({ apiVersion: 'acetate.dev/v1alpha1', kind: 'Container', metadata: { name: 'a' }, spec: { image } });
    try {
      const good = path.join(dir, 'good.conf');
      await writeFile(good, '[aliases]\n"myapp" = "127.0.0.1:5000/team/myapp"\n');
      process.env.ACETATE_REGISTRIES_CONF = good;
      const v = validateManifest(manifest('myapp:1'));
      assert.ok(v.ok);
      const d = normalizeManifest(v.manifest as ContainerManifest, { kind: 'file', file: 'a.yaml', line: 1 });
      assert.equal(d.spec.image?.ref, '127.0.0.1:5000/team/myapp:1');
      assert.equal(d.spec.imagePullPolicy, 'IfNotPresent');
      const bad = path.join(dir, 'bad.conf');
      await writeFile(bad, '[aliases]\n"myapp" = "myapp"\n');
      process.env.ACETATE_REGISTRIES_CONF = bad;
      const r = validateManifest(manifest('myapp:1'));
      assert.ok(!r.ok);
      assert.equal(r.issues[0]!.field, 'spec.image');
      assert.match(r.issues[0]!.message, new RegExp(`cannot resolve the short name 'myapp:1' through registries.conf: ${bad}:2: \\[aliases\\]`));
    } finally {
      if (saved === undefined) delete process.env.ACETATE_REGISTRIES_CONF;
      else process.env.ACETATE_REGISTRIES_CONF = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
