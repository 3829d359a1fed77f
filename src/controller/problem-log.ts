/**
 * Manifest problems as the loop reports them: a log line when a problem appears or goes away (at
 * most MAX_LOGGED_PER_ORIGIN per file each way, then a count: 10,000 bad documents are not 10,000
 * log lines), a line when the desired state becomes incomplete or complete again, and the current
 * list written for `acetate get` (status-store.ts problems.json).
 */
import type { SourceProblem } from '../contracts/source.js';
import type { Logger } from '../contracts/logger.js';
import { messageOf } from '../contracts/errors.js';
import type { MergedSnapshot } from './merge-sources.js';
import type { StatusStore } from './status-store.js';

/** Manifest problem lines logged per file at once (the rest are counted). */
const MAX_LOGGED_PER_ORIGIN = 20;

function problemText(p: SourceProblem): string {
  return `${p.origin}${p.line !== undefined ? `:${p.line}` : ''}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

export class ProblemLog {
  private last = new Map<string, SourceProblem>();
  private lastIncomplete?: string;

  constructor(private readonly opts: { logger: Logger; store?: StatusStore }) {}

  /** Logs what changed since the last call; writes the current problems for `acetate get`. */
  refresh(snap: MergedSnapshot): void {
    const logger = this.opts.logger;
    const now = new Map<string, SourceProblem>();
    for (const p of snap.problems) now.set(problemText(p), p);
    const logged = new Map<string, number>();
    const logCapped = (p: SourceProblem, log: () => void): void => {
      const n = (logged.get(p.origin) ?? 0) + 1;
      logged.set(p.origin, n);
      if (n <= MAX_LOGGED_PER_ORIGIN) log();
    };
    for (const [text, p] of now) {
      if (!this.last.has(text))
        logCapped(p, () => logger.warn(`manifest problem: ${text}`, { origin: p.origin, kind: p.kind, keys: p.keys, line: p.line, field: p.field }));
    }
    for (const [text, p] of this.last) {
      if (!now.has(text)) logCapped(p, () => logger.info(`manifest problem resolved: ${text}`, { origin: p.origin }));
    }
    for (const [origin, n] of logged)
      if (n > MAX_LOGGED_PER_ORIGIN) logger.warn(`${origin}: ${n - MAX_LOGGED_PER_ORIGIN} more manifest problems changed (not logged one by one)`, { origin });
    this.last = now;
    if (snap.incompleteReason !== this.lastIncomplete) {
      if (snap.incompleteReason) logger.warn(`desired state is incomplete: ${snap.incompleteReason}; no container will be destroyed (--allow-empty allows it)`);
      else if (this.lastIncomplete !== undefined) logger.info('desired state is complete again');
      this.lastIncomplete = snap.incompleteReason;
    }
    const rec: { problems: SourceProblem[]; complete: boolean; incompleteReason?: string } = { problems: snap.problems, complete: snap.complete };
    if (snap.incompleteReason) rec.incompleteReason = snap.incompleteReason;
    // Not a reconcile step (no key to requeue): the next change of the sources writes it again.
    this.opts.store?.writeProblems(rec).catch((err: unknown) => logger.warn('cannot write problems', { error: messageOf(err) }));
  }
}
