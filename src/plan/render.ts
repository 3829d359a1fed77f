/** Renders a plan the way `terraform plan` / `nomad job plan` do, and as JSON. */
import type { Action, ActionKind } from './actions.js';
import type { Plan } from './plan.js';
import type { HeldStart } from './restart.js';
import { formatResource } from './compare.js';
import { formatPorts, publishedOnly } from '../api/ports.js';
import { MAX_ERROR_CHARS, terminalText } from '../util/terminal-text.js';

const SYMBOL: Record<ActionKind, string> = {
  create: '+',
  start: '~',
  stop: '~',
  resize: '~',
  restart: '~',
  replace: '-/+',
  configure: '~',
  ports: '~',
  network: '~',
  kill: '~',
  destroy: '-',
};

function detail(a: Action): string {
  if (a.kind === 'create') {
    const s = a.desired.spec;
    const res = [
      s.image ? `image ${s.image.ref}${s.image.digest ? `@${s.image.digest}` : ''}` : `template ${s.template}`,
      s.resources.cpuMillis !== undefined ? `cpu ${formatResource('cpu', s.resources.cpuMillis)}` : '',
      s.resources.memoryBytes !== undefined ? `memory ${formatResource('memory', s.resources.memoryBytes)}` : '',
      s.resources.pids !== undefined ? `pids ${s.resources.pids}` : '',
      s.network === 'bridge' ? `network bridge${publishedOnly(s.ports).length ? `, ports ${formatPorts(s.ports)}` : ''}` : '',
      s.resources.diskBytes !== undefined ? `disk ${formatResource('disk', s.resources.diskBytes)}` : '',
    ].filter(Boolean);
    return `${res.join(', ')}: ${a.reason}`;
  }
  return a.reason;
}

export function renderPlanLines(plan: Plan): string[] {
  const width = Math.max(0, ...plan.actions.map((a) => a.key.length));
  // Reasons quote images and registries (a tag, an error): escaped, one line, bounded.
  return plan.actions.map((a) => `  ${SYMBOL[a.kind].padStart(3)} ${a.kind.padEnd(9)} ${a.key.padEnd(width)}  ${terminalText(detail(a), MAX_ERROR_CHARS)}`);
}

/** "12:03:10": the time of day a held start is due, in the local time zone (what the user's clock shows). */
function timeOfDay(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/** "start blocked by crash-loop back-off until 12:03:10 (back-off 20s restarting failed container: exited with code 1)" */
export function describeHeld(h: HeldStart): string {
  if (h.until !== undefined) return `start blocked by crash-loop back-off until ${timeOfDay(h.until)} (${h.message})`;
  return `not started again: ${h.message}`;
}

const SUMMARY_ORDER: ActionKind[] = ['create', 'start', 'resize', 'ports', 'network', 'restart', 'replace', 'configure', 'kill', 'stop', 'destroy'];

export function summarizePlan(plan: Plan): string {
  const due = plan.held.filter((h) => h.until !== undefined).length;
  const waiting = due ? `, ${due} start(s) held by crash-loop back-off` : '';
  if (!plan.actions.length) {
    return `No changes. ${plan.unchanged.length} container(s) converged${plan.skipped.length ? `, ${plan.skipped.length} left alone` : ''}${waiting}.`;
  }
  const counts = new Map<ActionKind, number>();
  for (const a of plan.actions) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
  const parts = SUMMARY_ORDER.filter((k) => counts.has(k)).map((k) => `${counts.get(k)} to ${k}`);
  return `Plan: ${parts.join(', ')}; ${plan.unchanged.length} unchanged${plan.skipped.length ? `, ${plan.skipped.length} left alone` : ''}${waiting}.`;
}

export function renderPlan(plan: Plan): string {
  const lines: string[] = [];
  if (plan.actions.length) {
    lines.push('acetate will perform the following actions:', '', ...renderPlanLines(plan), '');
  }
  for (const h of plan.held) lines.push(`  ! held       ${h.key}: ${terminalText(describeHeld(h), MAX_ERROR_CHARS)}`);
  for (const s of plan.skipped) lines.push(`  ! left alone ${s.key}: ${terminalText(s.reason, MAX_ERROR_CHARS)}`);
  if (plan.network) lines.push(`  ${plan.network.refused ? '!' : '~'} ${terminalText(plan.network.message, MAX_ERROR_CHARS)}`);
  if (plan.skipped.length || plan.held.length || plan.network) lines.push('');
  lines.push(summarizePlan(plan));
  return lines.join('\n') + '\n';
}

/** JSON form: actions without the full desired objects, stable for scripts. */
export function planToJson(plan: Plan): unknown {
  return {
    actions: plan.actions.map((a) => ({
      kind: a.kind,
      key: a.key,
      reason: a.reason,
      ...(a.kind === 'replace' ? { fields: a.fields, discardPrivateArea: a.discardPrivateArea } : {}),
      ...(a.kind === 'configure' ? { fields: a.fields } : {}),
      ...(a.kind === 'kill' ? { probe: a.probe, pid: a.pid } : {}),
      ...(a.kind === 'resize' || a.kind === 'restart' || a.kind === 'ports' ? { from: a.from, to: a.to } : {}),
    })),
    unchanged: plan.unchanged,
    skipped: plan.skipped,
    held: plan.held.map((h) => ({
      key: h.key,
      action: 'start',
      reason: h.reason,
      message: h.message,
      ...(h.until !== undefined ? { until: new Date(h.until).toISOString() } : {}),
    })),
    requeue: plan.requeue.map((r) => ({ key: r.key, at: new Date(r.at).toISOString() })),
    ...(plan.network ? { network: plan.network } : {}),
  };
}
