import type { CliContext, Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { keyOf, outputOption, parse } from '../args.js';
import { age, table } from '../table.js';
import { jsYaml } from '../../util/lazy-yaml.js';
import { readProblems, readStatusRecords } from '../../controller/status-store.js';
import { cappedLines, formatProblem } from '../problems.js';
import { containerList, containerObject } from '../container-object.js';
import { askLoop, withDiskUseNow } from '../loop-view.js';
import type { GetRecord } from '../../controller/view-protocol.js';
import {
  cellsAt,
  containerRow,
  HEADERS,
  isWaiting,
  ownRecords,
  WIDE_HEADERS,
  waitingRow,
  waitingWideCells,
  wideCells,
  type ContainerRow,
  type WaitingRecord,
} from '../../controller/container-rows.js';
import { API_VERSION, KIND, type ContainerManifest } from '../../api/types.js';

export const getCommand: Command = {
  name: 'get',
  summary: 'List the containers acetate manages on this node',
  usage: `Usage: acetate get [NAME...] [-n NAMESPACE] [-o wide|json|yaml] [--direct]

Shows each managed container: name, state, pid, cpu and memory as desired/actual (actual
as read from the container's cgroup), restarts and age. With NAMEs, those; a NAME not found is
said on stderr and the exit code is 1 (the others are printed).

Beside a running \`acetate run\` of the same state dir (root, the same acetate build, its first
sync done), what it last read of each container is shown, as kubectl shows what the node last
reported: its own actions, exits and restarts at once, a bridge network every 2 s, disk use
read now; a change made by hand behind acetate's back (\`runc update\`) at its next resync
(--resync, 5 min by default). The plain table comes as the loop's rows (fastest); -o wide,
json and yaml as its objects. --direct reads every container's files instead (what get does
without a loop; slower with many containers).

-o json|yaml prints Container objects as Kubernetes does (apiVersion, kind, metadata, spec,
status with conditions): one NAME gives the object, otherwise a \`kind: List\`. The same jq/yq
expression works on \`kubectl get container -o json\` in Kubernetes mode, e.g.
  acetate get -o json | jq -r '.items[] | select(.status.phase=="Running") | .metadata.name'`,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { output: outputOption('table'), namespace: { type: 'string', short: 'n' }, direct: { type: 'boolean' } });
    if (!['table', 'wide', 'json', 'yaml'].includes(values.output)) throw new UsageError(`--output must be json, yaml or wide, not '${values.output}'`);
    const want = positionals.length ? new Set(positionals.map((p) => keyOf(p, values.namespace))) : undefined;
    const select = <C extends Keyed, W extends Keyed>(items: C[], waiting: W[]) => selectByArgs(items, waiting, want, values.namespace, ctx);
    // The running loop's view when it answers (loop-view.ts), else every container's files. The
    // plain table asks for its rows only (controller/container-rows.ts: a tenth of the objects).
    if (values.output === 'table' && !values.direct) {
      const rows = await askLoop(ctx.runDir, ctx.stateDir, 'table');
      if (rows) {
        const { items, waiting, missing } = select(rows.containers, rows.records);
        if (want && !items.length && !waiting.length) return 1;
        await printTable(
          ctx,
          [...items, ...waiting].map((r) => cellsAt(r, age)),
        );
        return missing;
      }
    }
    // (A table the loop did not answer is not asked again as objects: the node is read.)
    const fromLoop = values.direct || values.output === 'table' ? undefined : await askLoop(ctx.runDir, ctx.stateDir, 'get');
    const runtime = async () => (await ctx.openRuntime()).runtime;
    // Disk use is read now whatever the view says (loop-view.ts).
    const read = fromLoop ? await withDiskUseNow(fromLoop.containers, runtime) : await (await runtime()).list();
    const stored: GetRecord[] = fromLoop ? fromLoop.records : await readStatusRecords(ctx.stateDir);
    // Declared but not created yet, waiting (an image that cannot be pulled): shown when named, with
    // the reason, as kubectl shows a pod in ErrImagePull, rather than "not found".
    const {
      items: list,
      waiting,
      missing,
    } = select(
      [...read].sort((a, b) => (a.key < b.key ? -1 : 1)),
      stored.filter(isWaiting),
    );
    if (want && !list.length && !waiting.length) return 1;
    // Only records of the containers that exist now (not of an earlier one of the same name).
    const records = ownRecords(list, stored);
    if (values.output === 'json' || values.output === 'yaml') {
      // Kubernetes' shape: one NAME → the object, else a List (as kubectl). Manifest problems go to
      // stderr, so stdout stays a valid object.
      const objects = [...list.map((c) => containerObject(c, records.get(c.key))), ...waiting.map(waitingObject)];
      const out = positionals.length === 1 && objects.length === 1 ? objects[0] : containerList(objects);
      if (values.output === 'json') print(ctx.stdout, JSON.stringify(out, null, 2));
      // Loaded only here (util/lazy-yaml.ts): js-yaml is most of what a table's `get` would otherwise load.
      else ctx.stdout.write(jsYaml().dump(out, { noRefs: true }));
      for (const p of (await readProblems(ctx.stateDir))?.problems ?? []) print(ctx.stderr, `manifest problem: ${formatProblem(p)}`);
      return missing;
    }
    const wide = values.output === 'wide';
    const printed = (row: ContainerRow, more: () => string[]) => [...cellsAt(row, age), ...(wide ? more() : [])];
    await printTable(
      ctx,
      [
        ...list.map((c) => printed(containerRow(c, records.get(c.key)), () => wideCells(c, records.get(c.key)))),
        ...waiting.map((r) => printed(waitingRow(r), () => waitingWideCells(r))),
      ],
      wide,
    );
    return missing;
  },
};

type Keyed = { key: string; namespace: string };

/**
 * The containers a command line asks for: the NAMEs given (those missing named on stderr; a
 * waiting one of them shown as waiting), else those of -n NAMESPACE, else all.
 */
function selectByArgs<C extends Keyed, W extends Keyed>(
  items: C[],
  waiting: W[],
  want: Set<string> | undefined,
  namespace: string | undefined,
  ctx: CliContext,
): { items: C[]; waiting: W[]; missing: 0 | 1 } {
  if (!want) return { items: namespace ? items.filter((c) => c.namespace === namespace) : items, waiting: [], missing: 0 };
  const chosen = items.filter((c) => want.has(c.key));
  const present = new Set(chosen.map((c) => c.key));
  const waits = waiting.filter((r) => want.has(r.key) && !present.has(r.key));
  const missing = [...want].filter((k) => !present.has(k) && !waits.some((r) => r.key === k));
  if (missing.length) print(ctx.stderr, `not found: ${missing.join(', ')}`);
  // Exit 1 when any NAME is not found, as kubectl: the ones found are printed all the same.
  return { items: chosen, waiting: waits, missing: missing.length ? 1 : 0 };
}

/** The table, or the line that says there is none, and the manifest errors the loop reported. */
async function printTable(ctx: CliContext, rows: string[][], wide = false): Promise<void> {
  if (rows.length) ctx.stdout.write(table([...HEADERS, ...(wide ? WIDE_HEADERS : [])], rows));
  else print(ctx.stdout, 'No containers managed by acetate on this node.');
  const problems = (await readProblems(ctx.stateDir))?.problems ?? [];
  if (problems.length) {
    print(ctx.stdout, `\nManifest errors reported by acetate run (containers they declare are left as last applied):`);
    for (const line of cappedLines(problems)) print(ctx.stdout, `  ${line}`);
  }
}

/** A waiting container as an object: no spec was applied yet, the status says why. */
function waitingObject(r: WaitingRecord & Pick<GetRecord, 'status'>): ContainerManifest {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name: r.name, namespace: r.namespace }, status: r.status } as ContainerManifest;
}
