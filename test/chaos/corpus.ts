/**
 * The bad-input corpus: manifests a user (or a broken generator, or an attacker with write access
 * to the GitOps checkout) could put in the manifest directory. Generated in code so that it is
 * reviewable and reproducible. Every case is written next to a valid, running "keeper" container;
 * acetate must report the case clearly (file and message), must not crash, and must leave the
 * keeper exactly as it is.
 */
import { mkdir, symlink, copyFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { isolationBadInputs } from './corpus-isolation.js';
import { c, file, ignored, manifest, type BadInput, type Category } from './corpus-cases.js';

export type { BadInput, Category } from './corpus-cases.js';

export const KEEPER = 'keeper';

export function keeperManifest(memory = '48Mi'): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${KEEPER}
spec:
  template: host
  command: ["/bin/sh", "-c", "exec sleep 1000000"]
  terminationGracePeriodSeconds: 0
  resources: { cpu: 200m, memory: ${memory}, pids: 16 }
`;
}

/** 9 levels of 9 aliases: ~387 million leaves if anything expands or serializes it. */
function aliasBomb(indent = ''): string {
  const lines = [`${indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`];
  for (let i = 1; i <= 9; i++)
    lines.push(
      `${indent}l${i}: &l${i} [${Array(9)
        .fill(`*l${i - 1}`)
        .join(',')}]`,
    );
  return lines.join('\n');
}

/** The whole corpus. Names of containers declared by cases start with `bad-` (never created). */
export function badInputs(): BadInput[] {
  const m = manifest;
  return [
    // ---------------------------------------------------------------- YAML syntax
    c('unclosed-flow', 'yaml-syntax', 'unclosed flow sequence', file('unclosed-flow.yaml', 'apiVersion: [\n'), /YAML syntax error/),
    c(
      'bad-indent',
      'yaml-syntax',
      'inconsistent indentation',
      file('bad-indent.yaml', m('bad-indent').replace('  template: host', '    template: host\n  command2')),
      /YAML syntax error/,
    ),
    c(
      'tab-indent',
      'yaml-syntax',
      'tab characters in indentation',
      file('tab-indent.yaml', m('bad-tab').replace('  template', '\ttemplate')),
      /YAML syntax error: tab/,
    ),
    c(
      'duplicate-key',
      'yaml-syntax',
      'a mapping key twice',
      file('duplicate-key.yaml', m('bad-dupkey').replace('kind: Container', 'kind: Container\nkind: Container')),
      /duplicated mapping key/,
    ),
    c(
      'unterminated-string',
      'yaml-syntax',
      'unterminated quoted string',
      file('unterminated.yaml', m('bad-x').replace('name: bad-x', 'name: "bad-x')),
      /YAML syntax error/,
    ),
    c(
      'js-tag',
      'yaml-syntax',
      '!!js/function tag',
      file('js-tag.yaml', m('bad-js', '  args: [!!js/function "function(){ process.exit(9) }"]\n')),
      /YAML syntax error: unknown tag/,
    ),
    c(
      'custom-tag',
      'yaml-syntax',
      'CloudFormation-style !Ref tag',
      file('custom-tag.yaml', m('bad-ref', '  hostname: !Ref Name\n')),
      /YAML syntax error: unknown tag/,
    ),
    c(
      'undefined-alias',
      'yaml-syntax',
      'alias to an anchor that does not exist',
      file('undefined-alias.yaml', m('bad-alias', '  args: *nope\n')),
      /unidentified alias/,
    ),
    c(
      'json-truncated',
      'yaml-syntax',
      'truncated JSON',
      file('truncated.json', '{"apiVersion": "acetate.dev/v1alpha1", "kind": "Container", "metadata": {"name": "bad-json"'),
      /YAML syntax error/,
    ),
    c('garbage-separators', 'yaml-syntax', 'document markers with garbage', file('separators.yaml', '--- !!str\n--- [\n...\n'), /YAML syntax error/),

    // ---------------------------------------------------------------- wrong types
    c(
      'command-string',
      'wrong-types',
      'command as a string',
      file('command-string.yaml', m('bad-cmd').replace('command: ["/bin/sleep", "1000000"]', 'command: /bin/sleep 1000000')),
      /spec\.command: must be a list, not a string/,
    ),
    c(
      'memory-bool',
      'wrong-types',
      'memory: true',
      file('memory-bool.yaml', m('bad-mem', '  resources: { memory: true }\n')),
      /spec\.resources\.memory: must be a whole number or a string, not a boolean/,
    ),
    c(
      'pids-string',
      'wrong-types',
      'pids: "many"',
      file('pids-string.yaml', m('bad-pids', '  resources: { pids: many }\n')),
      /spec\.resources\.pids: must be a whole number/,
    ),
    c(
      'pids-float',
      'wrong-types',
      'pids: 1.5',
      file('pids-float.yaml', m('bad-pids', '  resources: { pids: 1.5 }\n')),
      /spec\.resources\.pids: must be a whole number/,
    ),
    c(
      'env-mapping',
      'wrong-types',
      'env as a mapping instead of a list',
      file('env-mapping.yaml', m('bad-env', '  env: { MODE: batch }\n')),
      /spec\.env: must be a list/,
    ),
    c('env-null-item', 'wrong-types', 'env: [null]', file('env-null.yaml', m('bad-env', '  env: [null]\n')), /spec\.env\[0\]: must be a mapping/),
    c(
      'mounts-null-item',
      'wrong-types',
      'mounts: [null, 3]',
      file('mounts-null.yaml', m('bad-mnt', '  mounts: [null, 3]\n')),
      /spec\.mounts\[0\]: must be a mapping/,
    ),
    c(
      'mounts-string',
      'wrong-types',
      'mounts: "/srv:/data"',
      file('mounts-string.yaml', m('bad-mnt', '  mounts: "/srv:/data"\n')),
      /spec\.mounts: must be a list/,
    ),
    c(
      'spec-list',
      'wrong-types',
      'spec is a list',
      file('spec-list.yaml', 'apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata: { name: bad-spec }\nspec: [1, 2]\n'),
      /spec: must be a mapping, not a list/,
    ),
    c(
      'metadata-null',
      'wrong-types',
      'metadata is null',
      file('metadata-null.yaml', 'apiVersion: acetate.dev/v1alpha1\nkind: Container\nmetadata:\nspec: { template: host, command: [/bin/true] }\n'),
      /metadata: must be a mapping/,
    ),
    c('name-number', 'wrong-types', 'metadata.name: 123', file('name-number.yaml', m('123')), /metadata\.name: 123 is not a valid name/),
    c(
      'name-timestamp',
      'wrong-types',
      'metadata.name that YAML reads as a date',
      file('name-date.yaml', m('2001-12-14')),
      /metadata\.name: .* is not a valid name/,
    ),
    c(
      'state-lowercase',
      'wrong-types',
      'state: running',
      file('state.yaml', m('bad-state', '  state: running\n')),
      /spec\.state: 'running' is not one of Running, Stopped/,
    ),
    c(
      'readonly-string',
      'wrong-types',
      'readOnly: "yes"',
      file('readonly.yaml', m('bad-ro', '  mounts: [{ hostPath: /srv, containerPath: /data, readOnly: "yes" }]\n')),
      /spec\.mounts\[0\]\.readOnly: must be a boolean/,
    ),
    c('scalar-document', 'wrong-types', 'a document that is a number', file('scalar.yaml', '42\n'), /a Container must be a mapping, not a number/),
    c('list-document', 'wrong-types', 'a document that is a list', file('list.yaml', '- a\n- b\n'), /a Container must be a mapping, not a list/),
    c(
      'kind-pod',
      'wrong-types',
      'kind: Pod in the acetate API group',
      file('kind.yaml', m('bad-kind').replace('kind: Container', 'kind: Pod')),
      /kind: 'Pod' is not one of Container/,
    ),
    c(
      'api-version',
      'wrong-types',
      'apiVersion acetate.dev/v2',
      file('api-version.yaml', m('bad-api').replace('acetate.dev/v1alpha1', 'acetate.dev/v2')),
      /apiVersion: 'acetate\.dev\/v2' is not one of acetate\.dev\/v1alpha1/,
    ),

    // ---------------------------------------------------------------- unknown fields
    c(
      'typo-command',
      'unknown-fields',
      'spec.comand (typo) instead of command',
      file('typo.yaml', m('bad-typo').replace('  command:', '  comand:')),
      /spec\.comand: unknown field \(did you mean command\?\)/,
    ),
    c(
      'unknown-resource',
      'unknown-fields',
      'resources.gpu',
      file('gpu.yaml', m('bad-gpu', '  resources: { gpu: 1 }\n')),
      /spec\.resources\.gpu: unknown field/,
    ),
    c(
      'proto-key',
      'unknown-fields',
      '__proto__ key in spec',
      file('proto.yaml', m('bad-proto', '  __proto__: { privileged: true }\n')),
      /spec\.__proto__: unknown field/,
    ),
    c(
      'unknown-security',
      'unknown-fields',
      'securityContext.seLinuxOptions',
      file('seccomp.yaml', m('bad-sec', '  securityContext: { seLinuxOptions: { level: s0 } }\n')),
      /spec\.securityContext\.seLinuxOptions: unknown field/,
    ),

    // ---------------------------------------------------------------- huge
    c(
      'huge-file',
      'huge',
      '2 MiB file',
      file('huge.yaml', () => `${m('bad-huge')}# ${'x'.repeat(2 * 1024 * 1024)}\n`),
      /larger than the 1048576 bytes a manifest may have/,
    ),
    c(
      'huge-arg',
      'huge',
      'one 70 000-character argument',
      file('huge-arg.yaml', () => m('bad-arg', `  args: ["${'a'.repeat(70_000)}"]\n`)),
      /spec\.args\[0\]: is longer than 65536 characters/,
    ),
    c(
      'too-many-args',
      'huge',
      '2000 arguments',
      file('many-args.yaml', () => m('bad-args', `  args: [${Array(2000).fill('"a"').join(',')}]\n`)),
      /spec\.args: has more than 1024 items/,
    ),
    c(
      'many-documents',
      'huge',
      '3000 empty documents in one file',
      file('many-docs.yaml', () => '--- {}\n'.repeat(3000)),
      /required field is missing/,
    ),
    c(
      'many-keys',
      'huge',
      '60 000 keys in one mapping',
      file('many-keys.yaml', () => Array.from({ length: 60_000 }, (_, i) => `k${i}: ${i}`).join('\n')),
      /required field is missing/,
    ),
    c(
      'long-line',
      'huge',
      'a 900 KB line',
      file('long-line.yaml', () => 'a'.repeat(900_000)),
      /a Container must be a mapping, not a string/,
    ),

    // ---------------------------------------------------------------- deep nesting
    c(
      'deep-flow',
      'deep-nesting',
      '20 000 nested flow sequences',
      file('deep-flow.yaml', () => `a: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`),
      /YAML syntax error: nesting exceeded/,
    ),
    c(
      'deep-block',
      'deep-nesting',
      '400 nested block mappings',
      file('deep-block.yaml', () => `${Array.from({ length: 400 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} 1\n`),
      /YAML syntax error: nesting exceeded/,
    ),
    c(
      'alias-bomb-args',
      'deep-nesting',
      'billion laughs in spec.args',
      file('bomb-args.yaml', () => `status:\n${aliasBomb('  ')}\n${m('bad-bomb', '  args: *l9\n')}`),
      /spec\.args\[0\]: must be a string, not a list/,
    ),
    c(
      'alias-bomb-name',
      'deep-nesting',
      'billion laughs in metadata.name',
      file('bomb-name.yaml', () => `${aliasBomb()}\n${m('*l9')}`),
      /metadata\.name: .*not a valid name/,
    ),

    // ---------------------------------------------------------------- binary
    c(
      'nul-bytes',
      'binary',
      'NUL bytes',
      file('nul.yaml', Buffer.from('apiVersion: acetate.dev/v1alpha1\0\0\0kind: Container\n')),
      /binary file \(contains NUL bytes\)/,
    ),
    c(
      'utf16',
      'binary',
      'UTF-16 text',
      file('utf16.yaml', () => Buffer.from(m('bad-utf16'), 'utf16le')),
      /binary file/,
    ),
    c(
      'gzip',
      'binary',
      'a gzipped manifest named .yaml',
      file('gz.yaml', () => gzipSync(Buffer.from(m('bad-gz')))),
      /binary file|YAML syntax error|must be a mapping/,
    ),
    c(
      'elf',
      'binary',
      'an ELF executable named .yaml',
      async (dir) => {
        const p = path.join(dir, 'true.yaml');
        await copyFile('/bin/true', p);
        return p;
      },
      /binary file/,
    ),
    c(
      'high-bytes',
      'binary',
      'invalid UTF-8 without NUL',
      file('latin.yaml', Buffer.from(Array.from({ length: 5000 }, (_, i) => 0x80 + ((i * 7919) % 127)))),
      /must be a mapping|YAML syntax error/,
    ),

    // ---------------------------------------------------------------- duplicates
    c(
      'dup-keeper-other-file',
      'duplicates',
      'the keeper declared again in another file',
      file('keeper-again.yaml', m(KEEPER, '  resources: { memory: 96Mi }\n')),
      /default\/keeper is declared 2 times/,
      { touchesKeeper: true },
    ),
    c(
      'dup-in-one-file',
      'duplicates',
      'the same new name twice in one file',
      file('twice.yaml', `${m('bad-twice')}---\n${m('bad-twice')}`),
      /default\/bad-twice is declared 2 times/,
    ),
    c(
      'dup-keeper-invalid',
      'duplicates',
      'the keeper redeclared with an invalid spec',
      file('keeper-bad.yaml', m(KEEPER, '  resources: { memory: "12 GB" }\n')),
      /spec\.resources\.memory: '12 GB' is not a quantity/,
      { touchesKeeper: true },
    ),
    c(
      'dup-env',
      'duplicates',
      'an env var twice',
      file('dup-env.yaml', m('bad-env', '  env: [{ name: A, value: "1" }, { name: A, value: "2" }]\n')),
      /spec\.env\[1\]\.name: 'A' is set twice/,
    ),
    c(
      'dup-mount',
      'duplicates',
      'two mounts on the same containerPath',
      file('dup-mount.yaml', m('bad-mnt', '  mounts: [{ hostPath: /srv, containerPath: /data }, { hostPath: /opt, containerPath: /data/ }]\n')),
      /spec\.mounts\[1\]\.containerPath: '\/data\/' is mounted twice/,
    ),

    // ---------------------------------------------------------------- names (DNS-1123)
    c('name-uppercase', 'names', 'metadata.name Web', file('upper.yaml', m('Web')), /metadata\.name: 'Web' is not a valid name/),
    c(
      'name-underscore',
      'names',
      'metadata.name a_b (would split the runtime id)',
      file('underscore.yaml', m('bad_b')),
      /metadata\.name: 'bad_b' is not a valid name/,
    ),
    c('name-64', 'names', '64-character name', file('long-name.yaml', m(`bad-${'a'.repeat(60)}`)), /metadata\.name: .* is not a valid name/),
    c('name-empty', 'names', 'empty name', file('empty-name.yaml', m('""')), /metadata\.name: '' is not a valid name/),
    c('name-dash', 'names', 'name starting with a dash', file('dash.yaml', m('"-bad"')), /metadata\.name: '-bad' is not a valid name/),
    c('name-dot', 'names', 'name with a dot', file('dot.yaml', m('bad.name')), /metadata\.name: 'bad\.name' is not a valid name/),
    c('name-unicode', 'names', 'name with a non-ASCII letter', file('unicode.yaml', m('bad-wéb')), /metadata\.name: 'bad-wéb' is not a valid name/),
    c('name-nul-escape', 'names', 'name with an escaped NUL', file('nul-name.yaml', m('"bad\\0x"')), /metadata\.name: .* is not a valid name/),
    c(
      'namespace-invalid',
      'names',
      'namespace Kube_System',
      file('ns.yaml', m('bad-ns', '', '  namespace: Kube_System\n')),
      /metadata\.namespace: 'Kube_System' is not a valid namespace/,
    ),

    // ---------------------------------------------------------------- path traversal
    c(
      'name-traversal',
      'path-traversal',
      'metadata.name ../../etc',
      file('trav-name.yaml', m('../../etc')),
      /metadata\.name: '\.\.\/\.\.\/etc' is not a valid name/,
    ),
    c('name-slash', 'path-traversal', 'metadata.name a/b', file('slash-name.yaml', m('bad/b')), /metadata\.name: 'bad\/b' is not a valid name/),
    c(
      'namespace-traversal',
      'path-traversal',
      'metadata.namespace ..',
      file('trav-ns.yaml', m('bad-ns', '', '  namespace: ".."\n')),
      /metadata\.namespace: '\.\.' is not a valid namespace/,
    ),
    c(
      'mount-cp-traversal',
      'path-traversal',
      'containerPath /../../etc',
      file('trav-cp.yaml', m('bad-cp', '  mounts: [{ hostPath: /srv, containerPath: /../../etc }]\n')),
      /spec\.mounts\[0\]\.containerPath: '\/\.\.\/\.\.\/etc' must not contain '\.\.'/,
    ),
    c(
      'mount-hp-traversal',
      'path-traversal',
      'hostPath /tmp/../etc',
      file('trav-hp.yaml', m('bad-hp', '  mounts: [{ hostPath: /tmp/../etc, containerPath: /data }]\n')),
      /spec\.mounts\[0\]\.hostPath: '\/tmp\/\.\.\/etc' must not contain '\.\.'/,
    ),
    c(
      'mount-cp-relative',
      'path-traversal',
      'relative containerPath',
      file('rel-cp.yaml', m('bad-cp', '  mounts: [{ hostPath: /srv, containerPath: data/../.. }]\n')),
      /spec\.mounts\[0\]\.containerPath: 'data\/\.\.\/\.\.' is not an absolute path/,
    ),
    c(
      'mount-cp-root',
      'path-traversal',
      'containerPath / (over the container root)',
      file('root-cp.yaml', m('bad-cp', '  mounts: [{ hostPath: /etc, containerPath: "//" }]\n')),
      /spec\.mounts\[0\]\.containerPath: cannot mount over the container's root/,
    ),
    c(
      'mount-hp-nul',
      'path-traversal',
      'hostPath with an escaped NUL',
      file('nul-hp.yaml', m('bad-hp', '  mounts: [{ hostPath: "/tmp\\0/etc", containerPath: /data }]\n')),
      /spec\.mounts\[0\]\.hostPath: /,
    ),
    c(
      'workingdir-relative',
      'path-traversal',
      'workingDir ../..',
      file('wd.yaml', m('bad-wd', '  workingDir: ../..\n')),
      /spec\.workingDir: '\.\.\/\.\.' is not an absolute path/,
    ),
    c(
      'template-traversal',
      'path-traversal',
      'template ../../../etc',
      file('trav-tmpl.yaml', m('bad-tmpl').replace('template: host', 'template: ../../../etc')),
      /spec\.template: '\.\.\/\.\.\/\.\.\/etc' is not a valid name/,
    ),
    c(
      'hostname-traversal',
      'path-traversal',
      'hostname ../x',
      file('trav-host.yaml', m('bad-host', '  hostname: ../x\n')),
      /spec\.hostname: '\.\.\/x' is not a valid name/,
    ),
    c(
      'nodename-traversal',
      'path-traversal',
      'nodeName ../x',
      file('trav-node.yaml', m('bad-node', '  nodeName: ../x\n')),
      /spec\.nodeName: '\.\.\/x' is not a valid name/,
    ),
    c(
      'capability-traversal',
      'path-traversal',
      'capability ../x',
      file('trav-cap.yaml', m('bad-cap', '  securityContext: { capabilities: { add: ["../x"] } }\n')),
      /capabilities\.add\[0\]: '\.\.\/x' is not a capability name/,
    ),

    // ---------------------------------------------------------------- resources
    c(
      'memory-negative-string',
      'resources',
      'memory "-1Mi"',
      file('mem-neg.yaml', m('bad-mem', '  resources: { memory: "-1Mi" }\n')),
      /spec\.resources\.memory: '-1Mi' is not a quantity such as 512Mi/,
    ),
    c(
      'memory-negative-number',
      'resources',
      'memory: -5',
      file('mem-neg-num.yaml', m('bad-mem', '  resources: { memory: -5 }\n')),
      /spec\.resources\.memory: /,
    ),
    c(
      'memory-absurd',
      'resources',
      'memory 1000Pi (beyond 2^53 bytes)',
      file('mem-pi.yaml', m('bad-mem', '  resources: { memory: 1000Pi }\n')),
      /spec\.resources\.memory: /,
    ),
    c(
      'memory-infinite',
      'resources',
      'memory: 1e400 (YAML reads Infinity)',
      file('mem-inf.yaml', m('bad-mem', '  resources: { memory: 1e400 }\n')),
      /spec\.resources\.memory: /,
    ),
    c(
      'memory-tiny',
      'resources',
      'memory "1" (one byte)',
      file('mem-1.yaml', m('bad-mem', '  resources: { memory: "1" }\n')),
      /spec\.resources\.memory: '1' is below the smallest memory limit/,
    ),
    c(
      'memory-spaces',
      'resources',
      'memory "12 GB"',
      file('mem-gb.yaml', m('bad-mem', '  resources: { memory: 12 GB }\n')),
      /spec\.resources\.memory: '12 GB' is not a quantity such as 512Mi/,
    ),
    c(
      'cpu-zero',
      'resources',
      'cpu "0"',
      file('cpu-0.yaml', m('bad-cpu', '  resources: { cpu: "0" }\n')),
      /spec\.resources\.cpu: '0' is below the smallest CPU limit/,
    ),
    c(
      'cpu-negative',
      'resources',
      'cpu "-1"',
      file('cpu-neg.yaml', m('bad-cpu', '  resources: { cpu: "-1" }\n')),
      /spec\.resources\.cpu: '-1' is not a CPU quantity/,
    ),
    c('cpu-absurd-number', 'resources', 'cpu: 1e300', file('cpu-huge.yaml', m('bad-cpu', '  resources: { cpu: 1e300 }\n')), /spec\.resources\.cpu: /),
    c(
      'cpu-absurd-string',
      'resources',
      'cpu "99999999999999999999"',
      file('cpu-huge-str.yaml', m('bad-cpu', '  resources: { cpu: "99999999999999999999" }\n')),
      /spec\.resources\.cpu: /,
    ),
    c('pids-zero', 'resources', 'pids: 0', file('pids-0.yaml', m('bad-pids', '  resources: { pids: 0 }\n')), /spec\.resources\.pids: 0 must be at least 1/),
    c(
      'pids-absurd',
      'resources',
      'pids: 1e30',
      file('pids-huge.yaml', m('bad-pids', '  resources: { pids: 1e30 }\n')),
      /spec\.resources\.pids: .* must be at most 4194304/,
    ),
    c(
      'grace-negative',
      'resources',
      'terminationGracePeriodSeconds: -1',
      file('grace.yaml', m('bad-grace').replace('terminationGracePeriodSeconds: 0', 'terminationGracePeriodSeconds: -1')),
      /spec\.terminationGracePeriodSeconds: -1 must be at least 0/,
    ),
    c(
      'grace-absurd',
      'resources',
      'terminationGracePeriodSeconds: 10^9',
      file('grace-big.yaml', m('bad-grace').replace('terminationGracePeriodSeconds: 0', 'terminationGracePeriodSeconds: 1000000000')),
      /spec\.terminationGracePeriodSeconds: 1000000000 must be at most 3600/,
    ),
    c(
      'capability-unknown',
      'resources',
      'capability CAP_SYS_WIZARD (matches the pattern, does not exist)',
      file('cap.yaml', m('bad-cap', '  securityContext: { capabilities: { add: [SYS_WIZARD] } }\n')),
      /capabilit/,
    ),
    c(
      'resize-unknown',
      'resources',
      'resizePolicy for gpu',
      file('resize.yaml', m('bad-resize', '  resizePolicy: [{ resourceName: gpu, restartPolicy: NotRequired }]\n')),
      /spec\.resizePolicy\[0\]\.resourceName: 'gpu' is not one of cpu, memory, pids/,
    ),
    c(
      'env-name-invalid',
      'resources',
      'env name A-B',
      file('env-name.yaml', m('bad-env', '  env: [{ name: A-B, value: x }]\n')),
      /spec\.env\[0\]\.name: 'A-B' is not a valid environment variable name/,
    ),

    // ---------------------------------------------------------------- symlinks and special files
    c(
      'symlink-file-loop',
      'symlinks',
      'a.yaml -> b.yaml -> a.yaml',
      async (dir) => {
        await symlink('loop-b.yaml', path.join(dir, 'loop-a.yaml'));
        await symlink('loop-a.yaml', path.join(dir, 'loop-b.yaml'));
        return path.join(dir, 'loop-a.yaml');
      },
      /broken symlink|symlink loop|too many levels/i,
    ),
    c(
      'symlink-dir-loop',
      'symlinks',
      'sub/up -> .. (directory loop)',
      async (dir) => {
        await mkdir(path.join(dir, 'sub'), { recursive: true });
        await symlink('..', path.join(dir, 'sub', 'up'));
        return path.join(dir, 'sub', 'up');
      },
      /symlink loop/,
    ),
    c(
      'symlink-dangling',
      'symlinks',
      'symlink to a missing file outside the tree: refused as outside, as an existing one is (whether it exists is not told)',
      async (dir) => {
        await symlink('/nonexistent/acetate/x.yaml', path.join(dir, 'dangling.yaml'));
        return path.join(dir, 'dangling.yaml');
      },
      /symlink resolves outside the manifest directory/,
    ),
    c(
      'symlink-dangling-inside',
      'symlinks',
      'symlink to a missing file inside the tree',
      async (dir) => {
        await symlink('gone.yaml', path.join(dir, 'dangling-inside.yaml'));
        return path.join(dir, 'dangling-inside.yaml');
      },
      /broken symlink|cannot resolve: ENOENT/,
    ),
    c(
      'symlink-shadow',
      'symlinks',
      'shadow.yaml -> /etc/shadow (must not echo its contents)',
      async (dir) => {
        await symlink('/etc/shadow', path.join(dir, 'shadow.yaml'));
        return path.join(dir, 'shadow.yaml');
      },
      // Refused before it is read: it leads out of the manifest directory.
      /symlink resolves outside the manifest directory: refused, not read/,
    ),
    c(
      'symlink-dev-zero',
      'symlinks',
      'zero.yaml -> /dev/zero (endless; refused unread: it leads out of the directory)',
      async (dir) => {
        await symlink('/dev/zero', path.join(dir, 'zero.yaml'));
        return path.join(dir, 'zero.yaml');
      },
      /symlink resolves outside the manifest directory: refused, not read/,
    ),
    ignored('fifo', 'symlinks', 'a FIFO named fifo.yaml (reading it would block)', async (dir) => {
      const p = path.join(dir, 'fifo.yaml');
      execFileSync('mkfifo', [p]);
      return p;
    }),
    ignored(
      'other-api',
      'other',
      'an apps/v1 Deployment (not ours)',
      file('deployment.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 3 }\n'),
    ),
    ignored('empty-file', 'other', 'an empty file', file('empty.yaml', '')),
    ignored('editor-swap', 'other', 'an editor swap file with garbage', file('.keeper.yaml.swp', Buffer.from([0, 1, 2, 3, 0xff]))),
    ...isolationBadInputs(),
  ];
}

export function categoriesOf(cases: BadInput[]): Map<Category, number> {
  const out = new Map<Category, number>();
  for (const x of cases) out.set(x.category, (out.get(x.category) ?? 0) + 1);
  return out;
}
