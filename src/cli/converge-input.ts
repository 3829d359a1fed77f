/** Reads desired state (a manifest directory) and actual state (the runtime) for plan and apply. */
import os from 'node:os';
import path from 'node:path';
import { GIT_OPTIONS } from './git-usage.js';
import type { GitFlagValues } from './git-flags.js';
import { loadManifestDir, ManifestCache, type DirSnapshot } from '../sources/files/load.js';
import { manifestFingerprint, readManifestCacheFile, saveManifestCacheFile } from '../sources/files/manifest-cache-file.js';
import type { ActualContainer, Runtime } from '../runtime/runtime.js';
import { plan, type Plan, type PlanInput } from '../plan/plan.js';
import type { Writable } from 'node:stream';
import type { SourceProblem } from '../contracts/source.js';
import { print } from './command.js';
import { printProblems, printWarnings } from './problems.js';
import { nodeCapacity } from './node-capacity.js';
import type { PinResult } from '../images/pin.js';
import type { ImagePullError } from '../images/errors.js';
import { firstRound, lateInput, lateRounds, pullProblem, renderLate } from './image-rounds.js';
import { ImageResolver } from '../images/resolver.js';
import { readStatusRecords } from '../controller/status-store.js';
import type { PlanRecord } from '../controller/view-protocol.js';
import type { LoopView } from './loop-view.js';
import { planInputOf, type RuntimeFacts } from './plan-input.js';

export interface ConvergeInput {
  snapshot: DirSnapshot;
  /** With --git: the commit the snapshot is of. */
  gitNote?: string;
  actual: Map<string, ActualContainer>;
  planInput: PlanInput;
  /** Containers whose registry had not answered when the first plan was made (see image-rounds.ts). */
  pending: Map<string, Promise<PinResult>>;
  /** When the images began to be resolved (epoch ms): late answers say how long they took. */
  startedAt: number;
  /** Pull failures of the first round, by key. */
  imageErrors: Map<string, ImagePullError>;
}

export function nodeName(flag?: string): string {
  return flag ?? process.env.NODE_NAME ?? os.hostname();
}

/**
 * Reads everything plan and apply decide on. `stateDir` gives the crash-loop back-off `acetate
 * run` published (read only; honoured only for the exit it is about), so plan shows, and apply
 * takes, the same held starts the loop does; and the failed liveness (or startup) probes it has
 * not acted on yet (honoured only while that loop runs, and only for the process they are
 * about): the same kills.
 */
export async function readConvergeInput(opts: {
  dir?: string;
  /** --git and its flags: one sync of the Git source (see git-once.ts). */
  git?: GitFlagValues;
  allowEmpty: boolean;
  node: string;
  runtime: Runtime;
  stateDir: string;
  now?: number;
  /** What apply or run parsed of the manifests (manifest-cache-file.ts); `save`: this process holds the node lock. */
  manifestCache?: { file: string; save: boolean };
  /**
   * The running loop's view of the containers and their records (loop-view.ts), instead of
   * reading them; undefined when it gave none. A promise: the loop makes its answer (~50 ms at
   * 2,500 containers) while this process reads the manifests.
   */
  fromLoop?: Promise<LoopView<PlanRecord> | undefined>;
}): Promise<ConvergeInput> {
  const [snapshot, { list, records }, network] = await Promise.all([loadDesired(opts), readActual(opts), opts.runtime.networkFacts?.()]);
  const actual = new Map(list.map((c) => [c.key, c]));
  // Image digests are facts found before planning (a registry lookup for `Always`; see images/pin.ts),
  // for every container at once; a registry slow to answer holds its own containers only (image-rounds.ts).
  const startedAt = Date.now();
  const images = opts.runtime.images ? await firstRound(snapshot.containers, actual, new ImageResolver(opts.runtime.images)) : undefined;
  // A pull failure is reported as a problem of the manifest's image field (stderr, exit status 1).
  snapshot.problems.push(...(images?.problems ?? []));
  return {
    snapshot,
    ...(gitNotes.has(snapshot) ? { gitNote: gitNotes.get(snapshot) } : {}),
    actual,
    pending: images?.pending ?? new Map(),
    imageErrors: images?.errors ?? new Map(),
    startedAt,
    planInput: await planInputOf({
      desired: images?.desired ?? snapshot.containers,
      ...(images?.held.size ? { heldKeys: images.held } : {}),
      snapshot,
      actual,
      records,
      facts: runtimeFactsOf(opts.runtime, network),
      now: opts.now ?? Date.now(),
      readerPid: process.pid,
    }),
  };
}

/** What the runtime (opened with this command's flags) says the plan weighs (planInputOf leaves out what it does not say). */
export function runtimeFactsOf(runtime: Runtime, network: RuntimeFacts['network']): RuntimeFacts {
  return { granularity: runtime.granularity, network, userNamespaces: runtime.userNamespaceFacts?.() };
}

const gitNotes = new WeakMap<DirSnapshot, string>();

/** The containers and their status records: as the loop last read them, or read from the node when it gave no view. */
async function readActual(opts: {
  runtime: Runtime;
  stateDir: string;
  fromLoop?: Promise<LoopView<PlanRecord> | undefined>;
}): Promise<{ list: ActualContainer[]; records: PlanRecord[] }> {
  const view = await opts.fromLoop;
  if (view) return { list: view.containers, records: view.records };
  const [list, records] = await Promise.all([opts.runtime.list(), readStatusRecords(opts.stateDir)]);
  return { list, records };
}

/** -f DIR, --git URL, or both (merged under the conflict rule of `run`). */
async function loadDesired(opts: {
  dir?: string;
  git?: GitFlagValues;
  allowEmpty: boolean;
  node: string;
  stateDir: string;
  manifestCache?: { file: string; save: boolean };
}): Promise<DirSnapshot> {
  const capacity = nodeCapacity();
  const dir =
    opts.dir !== undefined ? await loadFilesDir(opts.dir, { allowEmpty: opts.allowEmpty, nodeName: opts.node, capacity }, opts.manifestCache) : undefined;
  if (opts.git?.git === undefined) return dir!;
  // Loaded only with --git: the Git source brings the file source's watcher along.
  const { loadGitOnce } = await import('./git-once.js');
  const { snapshot, note } = await loadGitOnce(opts.git, {
    stateDir: opts.stateDir,
    node: opts.node,
    allowEmpty: opts.allowEmpty,
    capacity,
    ...(dir ? { dir: { ...dir, name: `files:${path.resolve(opts.dir!)}` } } : {}),
  });
  gitNotes.set(snapshot, note);
  return snapshot;
}

/** The manifest cache file of an instance (in its run dir: what a reboot ends, as the stamps of the files' inodes may). */
export function manifestCacheOf(runDir: string, save: boolean): { file: string; save: boolean } {
  return { file: path.join(runDir, 'manifest-cache.json'), save };
}

/** -f DIR through the manifest cache file when there is one (each entry checked against its file). */
async function loadFilesDir(
  dir: string,
  opts: { allowEmpty: boolean; nodeName: string; capacity: ReturnType<typeof nodeCapacity> },
  persisted?: { file: string; save: boolean },
): Promise<DirSnapshot> {
  if (!persisted) return loadManifestDir(dir, opts);
  const cache = new ManifestCache();
  const fingerprint = manifestFingerprint({ nodeName: opts.nodeName, capacity: opts.capacity });
  await readManifestCacheFile(persisted.file, fingerprint, cache);
  const loadedAt = cache.generation;
  const snap = await loadManifestDir(dir, { ...opts, cache });
  if (persisted.save && cache.generation !== loadedAt) await saveManifestCacheFile(persisted.file, fingerprint, cache);
  return snap;
}

/** The command line of this process, as the node lock shows it to another one. */
export function commandLine(): string {
  return ['acetate', ...process.argv.slice(2)].join(' ');
}

export const CONVERGE_OPTIONS = {
  file: { type: 'string', short: 'f' },
  ...GIT_OPTIONS,
  'allow-empty': { type: 'boolean' },
  node: { type: 'string' },
} as const;

/**
 * What `plan` and `apply` share: read both states, plan, and report the manifests' warnings and
 * problems on stderr, so the two commands cannot show different plans for the same input.
 */
export async function planFromFlags(
  values: { file?: string; 'allow-empty'?: boolean; node?: string } & GitFlagValues,
  ctx: {
    runtime: Runtime;
    stateDir: string;
    stderr: Writable;
    manifestCache?: { file: string; save: boolean };
    fromLoop?: Promise<LoopView<PlanRecord> | undefined>;
  },
): Promise<{ input: ConvergeInput; plan: Plan }> {
  const input = await readConvergeInput({
    ...(ctx.manifestCache ? { manifestCache: ctx.manifestCache } : {}),
    ...(ctx.fromLoop ? { fromLoop: ctx.fromLoop } : {}),
    ...(values.file !== undefined ? { dir: values.file } : {}),
    ...(values.git !== undefined ? { git: values } : {}),
    allowEmpty: !!values['allow-empty'],
    node: nodeName(values.node),
    runtime: ctx.runtime,
    stateDir: ctx.stateDir,
  });
  const p = plan(input.planInput);
  reportReading(ctx.stderr, { ...input.snapshot, ...(input.gitNote ? { gitNote: input.gitNote } : {}) });
  return { input, plan: p };
}

/** What reading the manifests found, on stderr: the same lines whoever planned (the loop too: loop-planner.ts). */
export function reportReading(
  stderr: Writable,
  r: { gitNote?: string; warnings?: SourceProblem[]; problems: SourceProblem[]; incompleteReason?: string | undefined },
): void {
  if (r.gitNote) print(stderr, `git: ${r.gitNote}`);
  printWarnings(stderr, r.warnings);
  printProblems(stderr, r.problems);
  if (r.incompleteReason) print(stderr, `warning: ${r.incompleteReason}; nothing will be destroyed (use --allow-empty to allow it)`);
}

/**
 * The late rounds of `plan` and `apply` (image-rounds.ts): each container whose registry answered
 * after the first plan is planned on its own, printed, and handed to `run` (apply carries it out).
 * A pull failure is printed as a problem. Returns the late plans and their problems.
 */
export async function planLate(
  input: ConvergeInput,
  ctx: { stdout: Writable; stderr: Writable; runtime: Runtime; fresh: boolean },
  run: (late: Plan, key: string) => Promise<void> = async () => undefined,
): Promise<{ plans: Plan[]; problems: number; errors: Map<string, ImagePullError> }> {
  const out = { plans: [] as Plan[], problems: 0, errors: new Map<string, ImagePullError>() };
  if (!input.pending.size) return out;
  const keys = [...input.pending.keys()];
  print(ctx.stderr, `waiting for the registry of ${keys.join(', ')}; the other containers go on`);
  await lateRounds(input.pending, async (key, r) => {
    const fresh = ctx.fresh ? { actual: await ctx.runtime.get(key), network: await ctx.runtime.networkFacts?.() } : undefined;
    const late = plan(lateInput(input.planInput, key, r, fresh));
    if (r.error) {
      const d = input.snapshot.containers.get(key)!;
      printProblems(ctx.stderr, [pullProblem(d, r.error, !!r.held)]);
      out.problems++;
      out.errors.set(key, r.error);
    }
    print(ctx.stdout, renderLate(key, late, Date.now() - input.startedAt));
    out.plans.push(late);
    await run(late, key);
  });
  return out;
}
