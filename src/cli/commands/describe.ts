/** `acetate describe NAME`: everything known about one container, kubectl-describe style. */
import { jsYaml } from '../../util/lazy-yaml.js';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { keyOf, outputOption, parse } from '../args.js';
import { age, table } from '../table.js';
import { formatProblem } from '../problems.js';
import { formatResources } from '../../controller/status.js';
import { desiredPart, idsColumn } from '../../controller/publish.js';
import { currentStatus } from '../container-object.js';
import { controllerAlive, isOfIncarnation, readControllerRecord, readProblems, readStatusRecord } from '../../controller/status-store.js';
import { messageOf } from '../../contracts/errors.js';
import type { ActualContainer } from '../../runtime/runtime.js';
import type { SourceRef } from '../../api/types.js';
import { networkSummary } from '../../controller/network-status.js';
import type { NodeNetworkConfig } from '../../runtime/network/driver.js';
import { imageStatus } from '../../images/status.js';
import type { StatusRecord } from '../../contracts/status-record.js';
import type { SourceSyncState } from '../../contracts/source.js';
import { MAX_ERROR_CHARS, terminalText } from '../../util/terminal-text.js';
import { progressText, readPullProgress, type PullProgress } from '../../images/pull-progress.js';
import type { ImageStore } from '../../images/store.js';

function sourceText(s: SourceRef | undefined): string {
  if (!s) return '-';
  if (s.kind === 'kube') return `kube uid ${s.uid} (generation ${s.generation})`;
  return `${s.file}:${s.line}${s.revision ? ` (commit ${s.revision})` : ''}`;
}

function res(r: { cpu?: string; memory?: string; pids?: number } | undefined): string {
  if (!r) return '-';
  return `cpu ${r.cpu ?? 'unlimited'}, memory ${r.memory ?? 'unlimited'}, pids ${r.pids ?? 'unlimited'}`;
}

/** "12.3Mi used of 61.5Mi (image 64Mi, 20%; 7.4Mi by files, 3.9Mi by XFS itself, 1Mi kept by acetate)" */
export function diskText(d: { usedBytes: number; totalBytes: number; sizeBytes: number; filesBytes?: number; reservedBytes?: number }): string {
  const mi = (n: number) => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;
  const kept = d.reservedBytes ? d.reservedBytes : 0;
  const split =
    d.filesBytes === undefined
      ? ''
      : `; ${mi(d.filesBytes)} by files, ${mi(Math.max(0, d.usedBytes - d.filesBytes - kept))} by XFS itself${kept ? `, ${mi(kept)} kept by acetate` : ''}`;
  return `${mi(d.usedBytes)} used of ${mi(d.totalBytes)} (image ${mi(d.sizeBytes)}, ${Math.round((100 * d.usedBytes) / Math.max(1, d.totalBytes))}%${split})`;
}

function ago(iso: string | undefined, now: number): string {
  return iso ? `${age(iso, now)} ago (${iso})` : '-';
}

/** A record from what the runtime alone says, when the loop has not (yet) written one. */
function fromRuntime(a: ActualContainer): StatusRecord {
  const rec: StatusRecord = {
    key: a.key,
    namespace: a.namespace,
    name: a.name,
    status: { restartCount: a.restartCount, ...imageStatus(a.applied.spec.image) },
    source: a.applied.source,
    actual: {
      id: a.id,
      state: a.process.state,
      restartCount: a.restartCount,
      limits: formatResources(a.limits) ?? {},
      applied: { state: a.applied.spec.state, resources: formatResources(a.applied.spec.resources) ?? {} },
      ...(a.disk ? { disk: { ...a.disk } } : {}),
    },
    problems: [],
    recentActions: [],
    updatedAt: new Date().toISOString(),
  };
  if (a.process.pid !== undefined) rec.actual!.pid = a.process.pid;
  if (a.process.exitCode !== undefined) rec.actual!.exitCode = a.process.exitCode;
  if (a.process.reason) rec.actual!.reason = a.process.reason;
  if (a.process.unsupervised) rec.actual!.unsupervised = a.process.unsupervised;
  if (a.process.startedAt) rec.actual!.startedAt = a.process.startedAt;
  if (a.process.finishedAt) rec.actual!.finishedAt = a.process.finishedAt;
  rec.actual!.network = networkSummary(a);
  rec.actual!.ids = idsColumn(a);
  return rec;
}

/**
 * The record as true now, read as `get` reads it: the actual part fresh from the runtime; the
 * status (phase, pid, conditions) of the process that runs now (currentStatus: the loop's when it
 * saw this process, else computed from the runtime, as `get -o yaml`); the desired spec the loop
 * works on while it runs, else the applied one (what `apply`, or a run since stopped, converged to).
 */
function withCurrentTruth(
  rec: StatusRecord,
  a: ActualContainer | undefined,
  loopRecord: StatusRecord | undefined,
  loopAlive: boolean,
  now: number,
): StatusRecord {
  if (!a) return { ...rec, actual: undefined };
  const out: StatusRecord = { ...rec, actual: fromRuntime(a).actual, status: currentStatus(a, loopRecord, now) };
  const desired = loopAlive && loopRecord ? loopRecord.desired : desiredPart(a.applied.spec);
  if (desired) out.desired = desired;
  else delete out.desired;
  return out;
}

/** The Git source's state, for a container read from it: the commit applied, a failing sync, the signature check. */
export function gitLines(syncs: SourceSyncState[] | undefined, rec: StatusRecord): string[] {
  if (rec.source?.kind !== 'file' || !rec.source.revision || !syncs?.length) return [];
  const out: string[] = [];
  for (const g of syncs) {
    out.push(`Git:            ${g.url} ref ${g.ref}${g.path ? ` path ${g.path}` : ''}: commit ${g.revision ?? 'none yet'}`);
    if (g.signature) out.push(`  Signature:    ${g.signature}`);
    if (g.lastError)
      out.push(
        `  Sync failing: ${g.lastError.message} (${g.lastError.failures} in a row since ${g.lastError.time}${g.lastError.nextRetryAt ? `, next try ${g.lastError.nextRetryAt}` : ''})`,
      );
  }
  return out;
}

export function renderDescribe(
  rec: StatusRecord,
  loop: string,
  now = Date.now(),
  node?: NodeNetworkConfig,
  syncs?: SourceSyncState[],
  pull?: PullProgress,
): string {
  const s = rec.status;
  const lines: string[] = [];
  const field = (k: string, v: string | number | undefined): void => {
    // Values quote probes, images and registries: escaped, one line, bounded.
    lines.push(`${`${k}:`.padEnd(16)}${v === undefined || v === '' ? '-' : terminalText(String(v), MAX_ERROR_CHARS)}`);
  };
  field('Name', rec.name);
  field('Namespace', rec.namespace);
  field('Source', sourceText(rec.source));
  lines.push(...gitLines(syncs, rec));
  field('Phase', s.phase ?? 'Unknown');
  field('Node', s.node);
  field('PID', rec.actual?.pid ?? s.pid);
  field('IP', rec.actual?.network?.ip ?? s.ip);
  field('Restarts', rec.actual?.restartCount ?? s.restartCount ?? 0);
  const code = rec.actual?.exitCode ?? s.lastExitCode;
  field('Last exit code', code === undefined ? undefined : `${code}${rec.actual?.reason ? ` (${rec.actual.reason})` : ''}`);
  if (rec.actual?.unsupervised) field('Supervision', `lost: ${rec.actual.unsupervised}`);
  field('Started', ago(rec.actual?.startedAt ?? s.startedAt, now));
  if (s.image) field('Image', s.image);
  if (s.image) field('Image ID', s.imageID ?? '(not resolved yet)');
  if (rec.actual?.finishedAt) field('Finished', ago(rec.actual.finishedAt, now));
  lines.push('Desired:');
  if (rec.desired) {
    lines.push(`  State:          ${rec.desired.state}`);
    lines.push(`  Template:       ${rec.desired.template}`);
    lines.push(`  Command:        ${terminalText(JSON.stringify(rec.desired.command), MAX_ERROR_CHARS)}`);
    lines.push(`  Restart policy: ${rec.desired.restartPolicy}`);
    lines.push(`  Resources:      ${res(rec.desired.resources)}`);
  } else {
    lines.push('  (not declared by any valid manifest)');
  }
  lines.push('Actual:');
  if (rec.actual) {
    lines.push(`  Process:        ${rec.actual.state}${rec.actual.pid ? ` (pid ${rec.actual.pid})` : ''}`);
    lines.push(`  Limits:         ${rec.actual.state === 'running' ? res(rec.actual.limits) : '-'}`);
    lines.push(`  Applied:        state ${rec.actual.applied.state}, ${res(rec.actual.applied.resources)}`);
    const n = rec.actual.network;
    if (n) {
      lines.push(
        `  Network:        ${n.mode}${n.ip ? ` ${n.ip}` : ''}${n.mode === 'bridge' ? `, ports ${n.ports}` : ''}${n.problem ? ` (broken: ${terminalText(n.problem)})` : ''}`,
      );
      if (n.netns) lines.push(`  Net namespace:  ${n.netns}`);
      if (n.mode === 'bridge' && node)
        lines.push(`  Node network:   bridge ${node.bridge}, subnet ${node.subnet}, gateway ${node.gateway} (CNI network ${node.name})`);
    }
    if (rec.actual.disk) lines.push(`  Disk:           ${diskText(rec.actual.disk)}`);
    if (rec.actual.ids)
      lines.push(
        `  User ids:       ${rec.actual.ids === 'node' ? "node (the node's own ids: root is the node's root)" : `${rec.actual.ids} (its own user namespace range)`}`,
      );
    lines.push(`  Runtime id:     ${rec.actual.id}`);
  } else {
    lines.push('  (no container on this node)');
  }
  if (rec.waiting) field('Waiting', `${rec.waiting.reason}: ${rec.waiting.message}`);
  if (pull) field('Pull', progressText(pull));
  lines.push('Conditions:');
  if (s.conditions?.length) {
    const rows = s.conditions.map((c) => [c.type, c.status, c.reason ?? '', c.lastTransitionTime ? age(c.lastTransitionTime, now) : '-', c.message ?? '']);
    lines.push(
      ...table(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], rows)
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
    );
  } else {
    lines.push('  (none: the loop has not reconciled this container yet)');
  }
  if (rec.lastError) {
    const e = rec.lastError;
    const retry =
      e.retry === 'terminal'
        ? 'not retried until the manifest changes'
        : `retrying with back-off${e.failures ? ` (${e.failures} failures)` : ''}${e.nextRetryAt ? `, next at ${e.nextRetryAt}` : ''}`;
    field('Last error', `${e.action ? `${e.action}: ` : ''}${e.message} (${ago(e.time, now)}; ${retry})`);
  } else {
    field('Last error', '-');
  }
  if (rec.problems.length) {
    lines.push('Problems:');
    for (const p of rec.problems) lines.push(`  ${p.kind}: ${formatProblem(p)}`);
  }
  if (rec.recentActions.length) {
    lines.push('Recent actions:');
    const rows = rec.recentActions
      .slice()
      .reverse()
      .map((a) => [
        age(a.time, now),
        a.kind,
        a.outcome,
        a.durationMs !== undefined ? `${(a.durationMs / 1000).toFixed(2)}s` : '-',
        a.error ? `${a.reason ?? ''}: ${a.error}` : (a.reason ?? ''),
      ]);
    lines.push(
      ...table(['AGE', 'ACTION', 'RESULT', 'DURATION', 'REASON'], rows)
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
    );
  }
  field('Status updated', ago(rec.updatedAt, now));
  field('Loop', loop);
  return `${lines.join('\n')}\n`;
}

export const describeCommand: Command = {
  name: 'describe',
  summary: 'Show status, conditions, last error and source of one container',
  usage: `Usage: acetate describe NAME [-n NAMESPACE] [-o text|json|yaml]

Shows one container: phase, desired and actual resources, conditions (Ready, Synced,
ResizePending) with reasons and messages, the last error, restarts and last exit code, the
manifest file it comes from, and its recent actions. Phase, status and the actual part are
read as \`acetate get\` reads them (the runtime now; the loop's status while it saw this
process); Desired is what a running \`acetate run\` works on, else the spec last applied.
The last error and recent actions are what the loop last recorded.`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { namespace: { type: 'string', short: 'n' }, output: outputOption('text') });
    if (positionals.length !== 1) throw new UsageError('describe needs exactly one NAME');
    if (!['text', 'json', 'yaml'].includes(values.output)) throw new UsageError(`--output must be text, json or yaml, not '${values.output}'`);
    const key = keyOf(positionals[0]!, values.namespace);
    const stored = await readStatusRecord(ctx.stateDir, key);
    let actual: ActualContainer | undefined;
    let runtimeError: string | undefined;
    let node: NodeNetworkConfig | undefined;
    let images: ImageStore | undefined;
    try {
      const { runtime } = await ctx.openRuntime();
      images = runtime.images;
      actual = await runtime.get(key);
      try {
        node = runtime.nodeNetwork;
      } catch (err) {
        print(ctx.stderr, `warning: ${messageOf(err)}`);
      }
    } catch (err) {
      runtimeError = messageOf(err);
    }
    const ctl = await readControllerRecord(ctx.stateDir);
    // A record of an earlier container of the same name (destroyed, created again) says nothing of this one.
    const ofThis = stored && (runtimeError || isOfIncarnation(stored, actual?.applied.createdAt)) ? stored : undefined;
    let rec: StatusRecord | undefined = ofThis;
    if (!runtimeError && (ofThis || actual)) rec = withCurrentTruth(ofThis ?? fromRuntime(actual!), actual, ofThis, controllerAlive(ctl), Date.now());
    if (!rec) {
      // Maybe a manifest problem names it without any container existing.
      const problems = (await readProblems(ctx.stateDir))?.problems.filter((p) => p.keys.includes(key)) ?? [];
      if (problems.length) {
        for (const p of problems) print(ctx.stderr, `${p.kind}: ${formatProblem(p)}`);
        return 1;
      }
      print(ctx.stderr, `container ${key} not found${runtimeError ? ` (runtime: ${runtimeError})` : ''}`);
      return 1;
    }
    const loop = controllerAlive(ctl)
      ? `acetate run (pid ${ctl!.pid}) ${ctl!.ready ? 'ready' : 'starting'}${ctl!.metricsUrl ? `, metrics ${ctl!.metricsUrl}` : ''}`
      : ctl
        ? `not running (last stopped ${ctl.stoppedAt ?? 'unexpectedly'}); status may be stale`
        : 'acetate run has never run with this state dir';
    const syncs = controllerAlive(ctl) && rec.source?.kind === 'file' && rec.source.revision ? ctl!.syncs : undefined;
    if (values.output === 'json') {
      print(ctx.stdout, JSON.stringify({ ...rec, loop, ...(node ? { nodeNetwork: node } : {}), ...(syncs ? { git: syncs } : {}) }, null, 2));
      return 0;
    }
    if (values.output === 'yaml') {
      ctx.stdout.write(jsYaml().dump({ ...rec, loop }, { noRefs: true }));
      return 0;
    }
    // The pull in progress of the image it waits for (by this loop, or an apply): "3/7 layers, 12.3/40.1 MiB".
    const pull = rec.waiting?.pulling && images ? await readPullProgress(images.pullLocksDir, rec.waiting.pulling) : undefined;
    ctx.stdout.write(renderDescribe(rec, loop, Date.now(), node, syncs, pull));
    if (runtimeError) print(ctx.stderr, `warning: cannot read the runtime: ${runtimeError}`);
    return 0;
  },
};
