import type { SourceRef } from '../../api/types.js';
import yaml from 'js-yaml';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { keyOf, outputOption, parse } from '../args.js';
import { age, table } from '../table.js';
import { formatResource } from '../../plan/compare.js';
import type { ActualContainer } from '../../runtime/runtime.js';
import type { ResourceName, Resources } from '../../api/types.js';
import { isOfIncarnation, readProblems, readStatusRecords, statusSummary } from '../../controller/status-store.js';
import { cappedLines, formatProblem } from '../problems.js';
import { containerList, containerObject } from '../container-object.js';
import { networkSummary } from '../../controller/network-status.js';
import { imageStatus } from '../../images/status.js';
import { templateColumn } from '../../images/describe.js';
import { idsColumn } from '../../controller/publish.js';
import { askLoop, withDiskUseNow } from '../loop-view.js';
import type { GetRecord } from '../../controller/view-protocol.js';
import { API_VERSION, KIND, type ContainerManifest } from '../../api/types.js';

const FIELD: Record<ResourceName, keyof Resources> = { cpu: 'cpuMillis', memory: 'memoryBytes', pids: 'pids', disk: 'diskBytes' };

function phase(c: ActualContainer): string {
  if (c.process.state === 'running') return 'Running';
  if (c.process.state === 'exited') {
    if (c.process.reason === 'OOMKilled') return `OOMKilled(${c.process.exitCode ?? '?'})`;
    if (c.process.exitCode === undefined) return 'Unknown'; // ended unsupervised: see describe
    return c.process.exitCode === 0 ? 'Succeeded' : `Failed(${c.process.exitCode})`;
  }
  return c.applied.spec.state === 'Stopped' ? 'Stopped' : 'Pending';
}

/** "512Mi/512Mi": desired (applied) / actual (from the cgroup). */
function pair(c: ActualContainer, r: ResourceName): string {
  const want = formatResource(r, c.applied.spec.resources[FIELD[r]]);
  if (c.process.state !== 'running') return `${want}/-`;
  return `${want}/${formatResource(r, c.limits[FIELD[r]])}`;
}

/** DISK column: "used/total" of the private area's filesystem, "-" without a disk limit. */
function diskColumn(c: ActualContainer): string {
  if (!c.disk) return c.applied.spec.resources.diskBytes === undefined ? '-' : `?/${formatResource('disk', c.applied.spec.resources.diskBytes)}`;
  const mi = (n: number) => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;
  return `${mi(c.disk.usedBytes)}/${mi(c.disk.totalBytes)}`;
}

/** STATUS column: Ready, or the reason it is not (from the loop's last reconcile), with the error. */
function statusColumn(rec: GetRecord | undefined): string {
  if (!rec) return '-';
  const sum = statusSummary(rec);
  const text = sum.ready && !sum.reason ? 'Ready' : (sum.reason ?? 'NotReady');
  const msg = rec.lastError?.message ?? sum.message;
  return msg && (!sum.ready || sum.reason) ? `${text}: ${msg.length > 60 ? `${msg.slice(0, 57)}...` : msg}` : text;
}

export function toJson(c: ActualContainer, rec?: GetRecord): Record<string, unknown> {
  return {
    namespace: c.namespace,
    name: c.name,
    id: c.id,
    phase: phase(c),
    pid: c.process.pid,
    exitCode: c.process.exitCode,
    ...(c.process.reason ? { reason: c.process.reason } : {}),
    ...(c.process.unsupervised ? { unsupervised: c.process.unsupervised } : {}),
    restarts: c.restartCount,
    template: c.applied.spec.template,
    ...imageStatus(c.applied.spec.image),
    desired: {
      state: c.applied.spec.state,
      cpu: formatResource('cpu', c.applied.spec.resources.cpuMillis),
      memory: formatResource('memory', c.applied.spec.resources.memoryBytes),
      pids: c.applied.spec.resources.pids ?? 'unlimited',
      ...(c.applied.spec.resources.diskBytes !== undefined ? { disk: formatResource('disk', c.applied.spec.resources.diskBytes) } : {}),
    },
    actual:
      c.process.state === 'running'
        ? { cpu: formatResource('cpu', c.limits.cpuMillis), memory: formatResource('memory', c.limits.memoryBytes), pids: c.limits.pids ?? 'unlimited' }
        : null,
    ...(c.disk ? { disk: { ...c.disk } } : {}),
    source: c.applied.source,
    specHash: c.applied.specHash,
    createdAt: c.applied.createdAt,
    startedAt: c.process.startedAt,
    network: networkSummary(c),
    ...(rec ? { conditions: rec.status.conditions ?? [], lastError: rec.lastError, problems: rec.problems } : {}),
  };
}

/** The Git commit the container's spec is synced to, short as git prints it; - for other sources. */
function revisionColumn(src: SourceRef): string {
  return src.kind === 'file' && src.revision ? src.revision.slice(0, 7) : '-';
}

export const getCommand: Command = {
  name: 'get',
  summary: 'List the containers acetate manages on this node',
  usage: `Usage: acetate get [NAME...] [-n NAMESPACE] [-o wide|json|yaml] [--direct]

Shows each managed container: name, state, pid, cpu and memory as desired/actual (actual
as read from the container's cgroup), restarts and age.

Beside a running \`acetate run\` of the same state dir (root, the same acetate build, its first
sync done), what it last read of each container is shown, as kubectl shows what the node last
reported: its own actions, exits and restarts at once, a bridge network every 2 s, disk use
read now; a change made by hand behind acetate's back (\`runc update\`) at its next resync
(--resync, 5 min by default). --direct reads every container's files instead (what get does
without a loop; slower with many containers).

-o json|yaml prints Container objects as Kubernetes does (apiVersion, kind, metadata, spec,
status with conditions): one NAME gives the object, otherwise a \`kind: List\`. The same jq/yq
expression works on \`kubectl get container -o json\` in Kubernetes mode, e.g.
  acetate get -o json | jq -r '.items[] | select(.status.phase=="Running") | .metadata.name'`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { output: outputOption('table'), namespace: { type: 'string', short: 'n' }, direct: { type: 'boolean' } });
    if (!['table', 'wide', 'json', 'yaml'].includes(values.output)) throw new UsageError(`--output must be json, yaml or wide, not '${values.output}'`);
    // The running loop's view when it answers (loop-view.ts), else every container's files.
    const fromLoop = values.direct ? undefined : await askLoop(ctx.runDir, ctx.stateDir, 'get');
    const runtime = async () => (await ctx.openRuntime()).runtime;
    let list = fromLoop ? await withDiskUseNow(fromLoop.containers, runtime) : await (await runtime()).list();
    list = [...list].sort((a, b) => (a.key < b.key ? -1 : 1));
    const stored: GetRecord[] = fromLoop ? fromLoop.records : await readStatusRecords(ctx.stateDir);
    let waitingOnly: GetRecord[] = [];
    if (positionals.length) {
      const want = new Set(positionals.map((p) => keyOf(p, values.namespace)));
      let missing = [...want].filter((k) => !list.some((c) => c.key === k));
      // Declared but not created yet, waiting (an image that cannot be pulled): shown with the
      // reason, as kubectl shows a pod in ErrImagePull, rather than "not found".
      waitingOnly = waitingRecords(stored, missing);
      missing = missing.filter((k) => !waitingOnly.some((r) => r.key === k));
      if (missing.length) print(ctx.stderr, `not found: ${missing.join(', ')}`);
      list = list.filter((c) => want.has(c.key));
      if (!list.length && !waitingOnly.length) return 1;
    } else if (values.namespace) {
      list = list.filter((c) => c.namespace === values.namespace);
    }
    // Only records of the containers that exist now (not of an earlier one of the same name).
    const createdAt = new Map(list.map((c) => [c.key, c.applied.createdAt]));
    const records = new Map(stored.filter((r) => isOfIncarnation(r, createdAt.get(r.key))).map((r) => [r.key, r]));
    const problems = (await readProblems(ctx.stateDir))?.problems ?? [];
    if (values.output === 'json' || values.output === 'yaml') {
      // Kubernetes' shape: one NAME → the object, else a List (as kubectl). Manifest problems go to
      // stderr, so stdout stays a valid object.
      const objects = [...list.map((c) => containerObject(c, records.get(c.key))), ...waitingOnly.map(waitingObject)];
      const out = positionals.length === 1 && objects.length === 1 ? objects[0] : containerList(objects);
      if (values.output === 'json') print(ctx.stdout, JSON.stringify(out, null, 2));
      else ctx.stdout.write(yaml.dump(out, { noRefs: true }));
      for (const p of problems) print(ctx.stderr, `manifest problem: ${formatProblem(p)}`);
      return 0;
    }
    const printProblemLines = () => {
      if (!problems.length) return;
      print(ctx.stdout, `\nManifest errors reported by acetate run (containers they declare are left as last applied):`);
      for (const line of cappedLines(problems)) print(ctx.stdout, `  ${line}`);
    };
    if (!list.length && !waitingOnly.length) {
      print(ctx.stdout, 'No containers managed by acetate on this node.');
      printProblemLines();
      return 0;
    }
    const wide = values.output === 'wide';
    const headers = [
      'NAME',
      'STATE',
      'PID',
      'CPU',
      'MEMORY',
      'RESTARTS',
      'AGE',
      'STATUS',
      ...(wide ? ['IP', 'PORTS', 'PIDS', 'DISK', 'IDS', 'TEMPLATE', 'SOURCE', 'REVISION'] : []),
    ];
    const rows = list.map((c) => [
      c.namespace === 'default' ? c.name : c.key,
      phase(c),
      c.process.pid ? String(c.process.pid) : '-',
      pair(c, 'cpu'),
      pair(c, 'memory'),
      String(c.restartCount),
      age(c.applied.createdAt),
      c.process.unsupervised
        ? `${c.process.state === 'running' ? 'SupervisorLost' : 'ExitCodeUnknown'}: ${c.process.unsupervised.slice(0, 57)}...`
        : statusColumn(records.get(c.key)),
      ...(wide
        ? [
            c.network?.ip ?? '-',
            c.applied.spec.network === 'bridge' ? networkSummary(c).ports : '-',
            pair(c, 'pids'),
            diskColumn(c),
            idsColumn(c),
            templateColumn(c.applied.spec),
            c.applied.source.kind === 'file' ? `${c.applied.source.file}:${c.applied.source.line}` : `kube:${c.applied.source.uid}`,
            revisionColumn(records.get(c.key)?.source ?? c.applied.source),
          ]
        : []),
    ]);
    for (const r of waitingOnly) {
      const cells = [
        r.namespace === 'default' ? r.name : r.key,
        'Waiting',
        '-',
        `${r.desired?.resources.cpu ?? 'unlimited'}/-`,
        `${r.desired?.resources.memory ?? 'unlimited'}/-`,
      ];
      cells.push('0', '-', waitingColumn(r));
      rows.push([...cells, ...(wide ? ['-', '-', '-', '-', r.desired?.template ?? '-', '-', '-'] : [])]);
    }
    ctx.stdout.write(table(headers, rows));
    printProblemLines();
    return 0;
  },
};

/** The records of `keys` (no container on the node) that say the container waits, e.g. in ErrImagePull. */
function waitingRecords(stored: GetRecord[], keys: string[]): GetRecord[] {
  if (!keys.length) return [];
  const want = new Set(keys);
  return stored.filter((r) => want.has(r.key) && r.actual === undefined && r.waiting !== undefined && r.desired !== undefined);
}

/** "ErrImagePull: registry 127.0.0.1:5000 did not answer..." (bounded as the STATUS column is). */
function waitingColumn(r: GetRecord): string {
  const msg = r.waiting!.message;
  return `${r.waiting!.reason}: ${msg.length > 60 ? `${msg.slice(0, 57)}...` : msg}`;
}

/** A waiting container as an object: no spec was applied yet, the status says why. */
function waitingObject(r: GetRecord): ContainerManifest {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name: r.name, namespace: r.namespace }, status: r.status } as ContainerManifest;
}
