/**
 * Bad inputs about isolation (issue 11): hostPath mounts of an ancestor of acetate's state dir
 * (the corpus' state dir is under /tmp), directly or through a symlink, and malformed
 * seccompProfile / hostUsers. Each must be refused with the file, line and field named.
 */
import { symlink } from 'node:fs/promises';
import path from 'node:path';
import { c, file, manifest, type BadInput } from './corpus-cases.js';

/** A manifest mounting <dir>/<link>, a symlink to `target` (a dot name: the loader does not walk it). */
function viaSymlink(name: string, link: string, target: string): BadInput['write'] {
  return async (dir) => {
    await symlink(target, path.join(dir, link));
    return file(`${name}.yaml`, manifest(name, `  mounts: [{ hostPath: ${path.join(dir, link)}, containerPath: /mnt/x }]\n`))(dir);
  };
}

export function isolationBadInputs(): BadInput[] {
  const mount = (hostPath: string) => `  mounts: [{ hostPath: ${JSON.stringify(hostPath)}, containerPath: /mnt/x }]\n`;
  return [
    c(
      'hostpath-root',
      'path-traversal',
      "hostPath / (every container's private area)",
      file('hp-root.yaml', manifest('bad-hp', mount('/'))),
      /spec\.mounts\[0\]\.hostPath: '\/' contains acetate's state dir/,
    ),
    c(
      'hostpath-tmp',
      'path-traversal',
      'hostPath /tmp, the parent of the state dir',
      file('hp-tmp.yaml', manifest('bad-hp', mount('/tmp'))),
      /spec\.mounts\[0\]\.hostPath: '\/tmp' contains acetate's state dir/,
    ),
    c(
      'hostpath-tmp-slashes',
      'path-traversal',
      'hostPath //tmp/./ (the same, spelled oddly)',
      file('hp-tmp2.yaml', manifest('bad-hp', mount('//tmp/./'))),
      /spec\.mounts\[0\]\.hostPath: .* contains acetate's state dir/,
    ),
    c(
      'hostpath-symlink-root',
      'symlinks',
      'hostPath a symlink to /',
      viaSymlink('bad-lr', '.to-root', '/'),
      /spec\.mounts\[0\]\.hostPath: .*\(a symlink to \/\) contains acetate's state dir/,
    ),
    c(
      'hostpath-symlink-tmp',
      'symlinks',
      'hostPath a symlink to /tmp',
      viaSymlink('bad-lt', '.to-tmp', '/tmp'),
      /spec\.mounts\[0\]\.hostPath: .*\(a symlink to \/tmp\) contains acetate's state dir/,
    ),
    c(
      'seccomp-localhost-no-path',
      'other',
      'seccompProfile Localhost without localhostProfile',
      file('sc-lh.yaml', manifest('bad-sc', '  securityContext: { seccompProfile: { type: Localhost } }\n')),
      /spec\.securityContext\.seccompProfile\.localhostProfile: required with type Localhost/,
    ),
    c(
      'seccomp-type-case',
      'wrong-types',
      'seccompProfile type unconfined (lowercase)',
      file('sc-type.yaml', manifest('bad-sc', '  securityContext: { seccompProfile: { type: unconfined } }\n')),
      /spec\.securityContext\.seccompProfile\.type: 'unconfined' is not one of RuntimeDefault, Unconfined, Localhost/,
    ),
    c(
      'seccomp-relative',
      'path-traversal',
      'localhostProfile ../profile.json',
      file('sc-rel.yaml', manifest('bad-sc', '  securityContext: { seccompProfile: { type: Localhost, localhostProfile: ../profile.json } }\n')),
      /spec\.securityContext\.seccompProfile\.localhostProfile: /,
    ),
    c(
      'hostusers-string',
      'wrong-types',
      'hostUsers: "false"',
      file('hu-str.yaml', manifest('bad-hu', '  securityContext: { hostUsers: "false" }\n')),
      /spec\.securityContext\.hostUsers: must be a boolean/,
    ),
  ];
}
