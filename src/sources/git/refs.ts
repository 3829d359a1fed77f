/** Which commit of a remote a --ref names: a branch, a tag (peeled), a full ref name, a commit hash, or HEAD. */
import { GitSourceError } from './driver.js';

export interface WantedRevision {
  /** What to fetch: a full ref name, HEAD, or the commit hash itself. */
  fetch: string;
  /** The commit the remote advertises for it (undefined for a commit hash: known once fetched). */
  commit?: string;
}

const HASH = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** Resolves ref against the remote's refs (from ls-remote). Throws a GitSourceError when it names nothing there. */
export function resolveRef(refs: Map<string, string>, ref: string | undefined, url: string): WantedRevision {
  if (ref === undefined || ref === 'HEAD') {
    const head = refs.get('HEAD');
    if (!head) throw new GitSourceError(`${url} has no HEAD (an empty repository?); give --ref`);
    return { fetch: 'HEAD', commit: head };
  }
  const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  for (const name of candidates) {
    const commit = refs.get(name);
    if (commit) return { fetch: name, commit };
  }
  if (HASH.test(ref)) return { fetch: ref, commit: ref };
  const short = /^[0-9a-f]{7,39}$/.test(ref) ? '; an abbreviated commit hash cannot be fetched: give all 40 digits' : '';
  throw new GitSourceError(`ref '${ref}' is not on ${url} (a deleted branch or tag?)${short}`);
}

/** The short hash, as `git log --oneline` prints it by default (7 characters). */
export function shortHash(commit: string): string {
  return commit.slice(0, 7);
}

/** Why --ref cannot be a Git ref name or hash (it is passed to git as an argument), or undefined. */
export function checkRefSyntax(ref: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f~^:?*[\\]/.test(ref) || ref.includes('..') || ref.startsWith('-')) return `--ref '${ref}' is not a valid Git ref name`;
  return undefined;
}
