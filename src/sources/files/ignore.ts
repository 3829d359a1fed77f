/** Which paths in a manifest tree are manifests. Editors' and VCS files never are. */
import path from 'node:path';

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/** True for a directory or file name acetate never reads: dotfiles, .git, editor temp/backup files. */
export function isIgnoredName(name: string): boolean {
  return (
    name.startsWith('.') ||
    name.endsWith('~') ||
    /\.(swp|swo|swx|bak|orig|rej|tmp)$/i.test(name) ||
    (name.startsWith('#') && name.endsWith('#')) ||
    name === '4913' // vim's write test file
  );
}

/** True when the file at `p` should be read as a manifest (by its name alone). */
export function isManifestPath(p: string): boolean {
  const name = path.basename(p);
  return !isIgnoredName(name) && MANIFEST_EXT.test(name);
}

/** True when a path (file or directory) lies under an ignored name, relative to the root. */
export function isIgnoredPath(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  if (!rel || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return false;
  return rel.split(path.sep).some(isIgnoredName);
}
