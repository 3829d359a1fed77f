/**
 * `apply --git` / `plan --git`: one sync of the Git source (the same cache and checkout as `run
 * --git` with the same flags, so the paths containers were applied from stay the same), its
 * snapshot, merged with -f DIR's under the usual conflict rule.
 */
import type { DirSnapshot } from '../sources/files/load.js';
import { mergeSnapshots } from '../controller/merge-sources.js';
import { gitSourceFromFlags, type GitFlagValues } from './git-flags.js';
import { shortHash } from '../sources/git/refs.js';
import type { NodeCapacity } from '../sources/kube/desired.js';

export async function loadGitOnce(
  values: GitFlagValues,
  o: { stateDir: string; node: string; allowEmpty: boolean; capacity?: NodeCapacity; dir?: DirSnapshot & { name: string } },
): Promise<{ snapshot: DirSnapshot; note: string }> {
  const git = gitSourceFromFlags(values, { stateDir: o.stateDir, node: o.node, allowEmpty: o.allowEmpty, ...(o.capacity ? { capacity: o.capacity } : {}) })!;
  await git.start(() => undefined);
  await git.stop();
  const snap = git.snapshot();
  const state = git.state();
  const problems = [...snap.problems];
  // The fetch failed: reported (exit 1) with the commit kept; the containers it declared are left as they are.
  if (state.lastError) problems.push({ origin: git.name, kind: 'unreadable', keys: [], message: state.lastError.message });
  const gitSnap: DirSnapshot = { ...snap, problems, warnings: [], files: snap.files };
  const note = state.revision ? `${git.name}: commit ${shortHash(state.revision)} (${state.revision})` : `${git.name}: no commit`;
  if (!o.dir) return { snapshot: gitSnap, note };
  const merged = mergeSnapshots([
    { source: o.dir.name, snapshot: o.dir },
    { source: git.name, snapshot: gitSnap },
  ]);
  return { snapshot: { ...merged, warnings: o.dir.warnings, files: [...o.dir.files, ...gitSnap.files] }, note };
}
