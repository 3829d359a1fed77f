/**
 * The logger the Kubernetes integration writes to: the subset of a winston Logger it uses, so the
 * run command can pass its winston logger as is, and tests can capture lines.
 */

export interface KubeLogger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

export const silentLogger: KubeLogger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};

/** A logger that remembers lines (tests). */
export class MemoryLogger implements KubeLogger {
  readonly lines: { level: string; message: string; meta?: Record<string, unknown> }[] = [];
  error(message: string, meta?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', message, meta });
  }
  warn(message: string, meta?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', message, meta });
  }
  info(message: string, meta?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', message, meta });
  }
  debug(message: string, meta?: Record<string, unknown>): void {
    this.lines.push({ level: 'debug', message, meta });
  }
  has(level: string, re: RegExp): boolean {
    return this.lines.some((l) => l.level === level && re.test(l.message));
  }
}
