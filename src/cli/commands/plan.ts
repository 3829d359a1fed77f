import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { outputOption, parse } from '../args.js';
import { planToJson, renderPlan } from '../../plan/render.js';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { CONVERGE_OPTIONS, commandLine, manifestCacheOf, nodeName, planFromFlags, planLate, reportReading, runtimeFactsOf } from '../converge-input.js';
import { mergePlans, pullProblem } from '../image-rounds.js';
import { GIT_USAGE } from '../git-usage.js';
import { askLoop, askLoopToPlan } from '../loop-view.js';
import { nodeCapacity } from '../node-capacity.js';
import { manifestFingerprint } from '../../sources/files/manifest-cache-file.js';
import type { Runtime } from '../../runtime/runtime.js';
import { treeIdentity } from '../../util/tree-identity.js';
import type { PlanAsk } from '../../controller/view-protocol.js';
import type { Plan } from '../../plan/plan.js';
import type { SourceProblem } from '../../contracts/source.js';
import type { Writable } from 'node:stream';

export const planCommand: Command = {
  name: 'plan',
  summary: 'Show what apply would change, and why (changes nothing)',
  usage: `Usage: acetate plan [-f DIR] [--git URL [--ref REF] [--path SUBDIR]] [--output text|json]
                    [--allow-empty] [--node NAME] [--direct]

${GIT_USAGE}

Compares the Containers declared under DIR with the containers acetate runs on this node
and prints the actions apply would take:
  +   create    a declared container that does not exist
  ~   resize    limits change in place (same process)
  ~   restart   a limit whose resizePolicy is RestartContainer changed
  -/+ replace   a field that cannot change in place changed (the reason lists them)
  ~   kill      a liveness or startup probe of \`acetate run\` failed for the running
                process: killed as a crash, restartPolicy decides its restart
  -   destroy   a container no longer declared
  !   held      a restart not taken now: crash-loop back-off (until the time shown, as
                \`acetate run\` and \`apply\` do) or restartPolicy
A container whose image's registry has not answered within a second is shown left alone
(ImageResolving) and planned on its own, after the rest, when the answer comes (bounded by
--registry-timeout), as apply does.
Beside a running \`acetate run\` of the same state dir (root, the same acetate build, its first
sync done), the containers are taken as the loop last read them, as \`get\` shows them: a limit
changed by hand behind acetate's back shows (and the loop repairs it) at its next resync.
When DIR is that loop's own directory, seen the same way (the same mount and network
namespaces and root, --allow-empty, node name and node settings), with no symlink in it and no
container with an image, the loop makes the plan itself, of the files as they are now (read
again unless their stamps are unchanged; what it reads for a plan is never what it acts on):
the same plan, at a fraction of the time.
--direct reads every container's files instead: drift made by hand shows at once.
A change of --network-subnet or --network-bridge is shown too: refused (exit status 1, bridge
containers left alone) while containers hold addresses on the old network.
Exit status: 0 nothing to do, 2 changes, 1 error (invalid manifests are reported; their
containers are left as they are).`,
  async run(argv, ctx) {
    const { values } = parse(argv, { ...CONVERGE_OPTIONS, output: outputOption('text'), 'dry-run': { type: 'boolean' }, direct: { type: 'boolean' } });
    if (!values.file && !values.git) throw new UsageError('plan needs -f DIR and/or --git URL');
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError(`--output must be text or json, not '${values.output}'`);
    // --git updates the checkout under the state dir that `run --git` reads: not while another acetate holds the node.
    if (values.git) await ctx.lockNode({ wait: false, command: commandLine() });
    const { runtime } = await ctx.openRuntime();
    // Beside `acetate run` of this very directory, the loop plans (loop-planner.ts); else this process does.
    const asked = values.direct || values.git !== undefined ? undefined : await askLoopToPlan(ctx.runDir, ctx.stateDir, await planAsk(values, runtime));
    const byLoop = asked?.made;
    if (byLoop) {
      reportReading(ctx.stderr, byLoop);
      if (values.output === 'json') printJson(ctx.stdout, byLoop.plan, byLoop.problems);
      else ctx.stdout.write(renderPlan(byLoop.plan));
      return exitStatus(byLoop.problems.length, byLoop.plan);
    }
    // Asked now, read while the manifests are: the loop makes its answer meanwhile.
    // (Its 3 s timeout runs meanwhile: manifests parsed for longer than that, the node is read instead.)
    // A loop that did not answer the ask at all (stopped) is not asked again: the node is read.
    const fromLoop = values.direct || asked?.silent ? undefined : askLoop(ctx.runDir, ctx.stateDir, 'plan').catch(() => undefined);
    // What apply or run parsed of the manifests, each checked against its file; plan writes nothing.
    const { input, plan: p } = await planFromFlags(values, {
      runtime,
      stateDir: ctx.stateDir,
      stderr: ctx.stderr,
      ...(fromLoop ? { fromLoop } : {}),
      ...(ctx.runDir ? { manifestCache: manifestCacheOf(ctx.runDir, false) } : {}),
    });
    if (values.output === 'json') {
      // One object: the containers whose registry answered late are folded in.
      const late = await planLate(input, { stdout: new PassThrough().resume(), stderr: ctx.stderr, runtime, fresh: false });
      const all = mergePlans(p, late.plans);
      const problems = [...input.snapshot.problems, ...[...late.errors].map(([k, e]) => pullProblem(input.snapshot.containers.get(k)!, e, true))];
      printJson(ctx.stdout, all, problems);
      return exitStatus(problems.length, p, late.plans);
    }
    ctx.stdout.write(renderPlan(p));
    // Containers whose registry is slow: planned as their answers come, as apply does.
    const late = await planLate(input, { stdout: ctx.stdout, stderr: ctx.stderr, runtime, fresh: false });
    return exitStatus(input.snapshot.problems.length + late.problems, p, late.plans);
  },
};

/** One JSON object: the plan (the late rounds folded in) and the problems. */
function printJson(out: Writable, p: Plan, problems: SourceProblem[]): void {
  print(out, JSON.stringify({ ...(planToJson(p) as object), problems }, null, 2));
}

/** 1: problems, or a network change refused; 2: changes (in the plan or a late round's); 0: nothing to do. */
function exitStatus(problems: number, p: Plan, late: Plan[] = []): number {
  if (problems || p.network?.refused) return 1;
  return p.actions.length || late.some((l) => l.actions.length) ? 2 : 0;
}

/** What the loop needs to plan as this process would: the directory, how it is read, and this runtime's facts. */
async function planAsk(values: { file?: string; 'allow-empty'?: boolean; node?: string }, runtime: Runtime): Promise<PlanAsk> {
  const dir = path.resolve(values.file!);
  return {
    dir,
    seenAs: treeIdentity(dir),
    allowEmpty: !!values['allow-empty'],
    fingerprint: manifestFingerprint({ nodeName: nodeName(values.node), capacity: nodeCapacity() }),
    ...runtimeFactsOf(runtime, await runtime.networkFacts?.()),
  };
}
