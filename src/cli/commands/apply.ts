import type { CliContext, Command } from '../command.js';
import type { Plan } from '../../plan/plan.js';
import type { Runtime } from '../../runtime/runtime.js';
import { print, UsageError } from '../command.js';
import { parse, parsePositiveInt } from '../args.js';
import { renderPlan, renderPlanLines } from '../../plan/render.js';
import { applyPlan, type ApplySummary } from '../../apply/apply.js';
import { messageOf } from '../../contracts/errors.js';
import { formatResource } from '../../plan/compare.js';
import type { ActionResult } from '../../apply/execute.js';
import { CONVERGE_OPTIONS, commandLine, manifestCacheOf, nodeName, planFromFlags, planLate } from '../converge-input.js';
import { recordApplyStatus, recordImageWaiting } from '../apply-status.js';
import type { ImagePullError } from '../../images/errors.js';
import { mergePlans } from '../image-rounds.js';
import { terminalProgress } from '../pull-progress-view.js';
import { readStatusRecords, removeStatusRecord } from '../../controller/status-store.js';
import { GIT_USAGE } from '../git-usage.js';

function describeResult(r: ActionResult): string {
  const bits = [`${r.outcome} ${r.key}`];
  if (r.pid) bits.push(`pid ${r.pid}`);
  if (r.limits && r.outcome !== 'deferred') {
    const l = r.limits;
    bits.push(
      `cpu ${formatResource('cpu', l.cpuMillis)}, memory ${formatResource('memory', l.memoryBytes)}, pids ${formatResource('pids', l.pids)}${l.diskBytes !== undefined ? `, disk ${formatResource('disk', l.diskBytes)}` : ''}`,
    );
  }
  for (const d of r.deferred ?? []) bits.push(`${d.resource} ${d.infeasible ? 'infeasible' : 'deferred'}: ${d.reason}`);
  return `${bits.join(' · ')} (${(r.durationMs / 1000).toFixed(1)}s)`;
}

/**
 * Containers the plan adds to the node (starts less those it stops or destroys), checked against
 * the node's kernel limits: each one the plan would cross is named with the sysctl that raises it.
 * The starts past it are refused one by one by the runtime, in the same words.
 */
async function warnNodeLimits(p: Plan, runtime: Runtime, ctx: CliContext): Promise<void> {
  let wanted = 0;
  for (const a of p.actions) {
    if ((a.kind === 'create' && a.desired.spec.state === 'Running') || a.kind === 'start') wanted++;
    else if (a.kind === 'destroy' || a.kind === 'stop') wanted--;
  }
  if (wanted <= 0 || !runtime.nodeLimits) return;
  const found = await runtime.nodeLimits(wanted).catch((err: unknown) => {
    print(ctx.stderr, `acetate: warning: cannot read the node's limits: ${messageOf(err)}`);
    return [];
  });
  for (const f of found) print(ctx.stderr, `acetate: warning: ${f.message}`);
}

export const applyCommand: Command = {
  name: 'apply',
  summary: 'Converge this node to the Containers declared in a directory',
  usage: `Usage: acetate apply [-f DIR] [--git URL [--ref REF] [--path SUBDIR] [--verify-signatures KEYRING]]
                     [--concurrency N] [--allow-empty] [--dry-run] [--node NAME]

Plans (see \`acetate plan\`) and carries out the plan: creates, resizes in place, restarts,
replaces and destroys containers, independent containers concurrently. Applying again
when converged does nothing.

Safety: if DIR is missing, unreadable or has no valid manifest, nothing is destroyed unless
--allow-empty is given. A file that fails validation is reported and the containers it
declared are left exactly as they are.

${GIT_USAGE}
  --concurrency N  containers changed at once (default 4)
  --dry-run        print the plan and stop (same as acetate plan)
  --wait           when another acetate (apply, run, template) is changing this state dir,
                   wait for it to finish instead of exiting 1
Exit status: 0 converged, 1 any error.`,
  async run(argv, ctx) {
    const { values } = parse(argv, {
      ...CONVERGE_OPTIONS,
      concurrency: { type: 'string', default: '4' },
      'dry-run': { type: 'boolean' },
      wait: { type: 'boolean' },
    });
    if (!values.file && !values.git) throw new UsageError('apply needs -f DIR and/or --git URL');
    const concurrency = parsePositiveInt(values.concurrency, '--concurrency');
    // Held until exit, before actual state is read: a plan made while another process changes
    // the same containers would be carried out over its work.
    if (!values['dry-run'] || values.git) await ctx.lockNode({ wait: !!values.wait, command: commandLine() });
    const { runtime } = await ctx.openRuntime();
    const holdsLock = !values['dry-run'] || !!values.git;
    // Leaves what it parsed of the manifests for the next plan (manifest-cache-file.ts) when it holds the node lock.
    const { input, plan: p } = await planFromFlags(values, {
      runtime,
      stateDir: ctx.stateDir,
      stderr: ctx.stderr,
      ...(ctx.runDir ? { manifestCache: manifestCacheOf(ctx.runDir, holdsLock) } : {}),
    });
    const refused = !!p.network?.refused;
    if (refused) print(ctx.stderr, `acetate: ${p.network!.message}`);
    await warnNodeLimits(p, runtime, ctx);
    if (values['dry-run']) {
      ctx.stdout.write(renderPlan(p));
      const late = await planLate(input, { stdout: ctx.stdout, stderr: ctx.stderr, runtime, fresh: false });
      return input.snapshot.problems.length || late.problems || refused ? 1 : 0;
    }
    // Loop devices and mounts a killed acetate left, ranges an earlier one did not claim (not on a dry run).
    for (const w of (await runtime.sweepLeftovers?.()) ?? []) print(ctx.stderr, `acetate: warning: ${w}`);
    if (!p.actions.length && !input.pending.size) {
      ctx.stdout.write(renderPlan(p));
      await recordWaiting(input.imageErrors);
      return input.snapshot.problems.length || refused ? 1 : 0;
    }
    if (p.actions.length) print(ctx.stdout, renderPlanLines(p).join('\n'));
    for (const s of p.skipped) print(ctx.stdout, `  ! left alone ${s.key}: ${s.reason}`);
    print(ctx.stdout, '');
    const t0 = performance.now();
    const summary: ApplySummary = { results: [], errors: [] };
    const carryOut = async (plan: Plan): Promise<void> => {
      if (!plan.actions.length) return;
      const done = await applyPlan(plan, {
        runtime,
        concurrency,
        onStart: (a) => print(ctx.stdout, `  … ${a.kind} ${a.key}`),
        onDone: (_a, r) => print(ctx.stdout, `  ✓ ${describeResult(r)}`),
        onError: (_a, e) => print(ctx.stderr, `  ✗ ${e.kind} ${e.key} failed: ${messageOf(e.cause)}`),
      });
      summary.results.push(...done.results);
      summary.errors.push(...done.errors);
    };
    // Pull progress on the terminal (stderr): a line per image at most every 2 s, when bytes moved.
    if (process.stderr.isTTY && runtime.images) runtime.images.onPullProgress = terminalProgress(ctx.stderr);
    // The first round at once; a container whose registry is slow, when it answers (image-rounds.ts).
    const [, late] = await Promise.all([carryOut(p), planLate(input, { stdout: ctx.stdout, stderr: ctx.stderr, runtime, fresh: true }, carryOut)]);
    const all = mergePlans(p, late.plans);
    // A destroyed container's status goes with it (a container created later under the name is another one).
    for (const r of summary.results) if (r.outcome === 'destroyed') await removeStatusRecord(ctx.stateDir, r.key).catch(() => undefined);
    // Failures stay visible in `get` and `describe` after apply exits (no loop needed to tell them).
    await recordApplyStatus(all, summary, { stateDir: ctx.stateDir, runtime, snapshot: input.snapshot, nodeName: nodeName(values.node) }).catch(
      (err: unknown) => print(ctx.stderr, `acetate: warning: cannot record the status of what apply did: ${messageOf(err)}`),
    );
    await recordWaiting(new Map([...input.imageErrors, ...late.errors]));
    // A container that waited on its image and is declared no more: its record goes (get would show it waiting).
    if (input.snapshot.complete)
      for (const r of await readStatusRecords(ctx.stateDir))
        if (!r.actual && r.waiting && !input.snapshot.containers.has(r.key) && !(await runtime.get(r.key)))
          await removeStatusRecord(ctx.stateDir, r.key).catch(() => undefined);
    const counts = new Map<string, number>();
    for (const r of summary.results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
    const parts = [...counts].map(([k, n]) => `${n} ${k}`);
    parts.push(`${all.unchanged.length} unchanged`);
    if (summary.errors.length) parts.push(`${summary.errors.length} failed`);
    print(
      ctx.stdout,
      `\nApply ${summary.errors.length ? 'finished with errors' : 'complete'}: ${parts.join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)}s.`,
    );
    return summary.errors.length || input.snapshot.problems.length || late.problems || refused ? 1 : 0;

    /** Containers left waiting on their image: `get` and `describe` show why (ErrImagePull...). */
    async function recordWaiting(errors: Map<string, ImagePullError>): Promise<void> {
      if (!errors.size) return;
      await recordImageWaiting(errors, { stateDir: ctx.stateDir, runtime, snapshot: input.snapshot, nodeName: nodeName(values.node) }).catch((err: unknown) =>
        print(ctx.stderr, `acetate: warning: cannot record why containers wait: ${messageOf(err)}`),
      );
    }
  },
};
