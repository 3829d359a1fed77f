/**
 * acetate's logs (winston): one JSON object per line when stdout is not a terminal (for journald,
 * log shippers, tests), a readable line on a terminal. One line per action carried out, with the
 * container, the action, its duration and its result.
 */
import winston from 'winston';
import type { Writable } from 'node:stream';
import { MAX_ERROR_CHARS, terminalText } from '../util/terminal-text.js';
import { TerminalSafeStream } from '../util/terminal-stream.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface LoggerOptions {
  level?: LogLevel;
  /** JSON lines; default: when the stream is not a TTY. */
  json?: boolean;
  /** Where to write; default process.stdout. */
  stream?: Writable & { isTTY?: boolean };
  /** Silence everything (tests). */
  silent?: boolean;
}

/**
 * Messages and string fields quote containers, probes and registries: escaped and bounded
 * (terminalText) in both forms, so neither a terminal nor a log viewer showing the JSON lines
 * acts on an escape sequence, and one registry error is not a 441 KB log line.
 */
const safeText = winston.format((info) => {
  const out = info as Record<string | symbol, unknown>;
  for (const key of Object.keys(out)) {
    const v = out[key];
    if (typeof v === 'string' && key !== 'level' && key !== 'timestamp') out[key] = terminalText(v, MAX_ERROR_CHARS);
  }
  return info;
});

function readable(): winston.Logform.Format {
  return winston.format.printf((info) => {
    const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
    const fields = Object.entries(rest)
      .filter(([k, v]) => v !== undefined && typeof k === 'string' && !k.startsWith('Symbol('))
      .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    const time = typeof timestamp === 'string' ? timestamp.slice(11, 23) : '';
    return `${time} ${String(level).toUpperCase().padEnd(5)} ${String(message)}${fields ? `  ${fields}` : ''}`;
  });
}

export function createLogger(opts: LoggerOptions = {}): winston.Logger {
  const stream = opts.stream ?? process.stdout;
  const json = opts.json ?? !stream.isTTY;
  const level = opts.level ?? (process.env.ACETATE_LOG_LEVEL as LogLevel | undefined) ?? 'info';
  const logger = winston.createLogger({
    level,
    silent: opts.silent ?? false,
    format: json
      ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), safeText(), winston.format.json())
      : winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), safeText(), readable()),
    // And whatever a field nests: no control character reaches the stream raw (JSON stays exact).
    transports: [new winston.transports.Stream({ stream: new TerminalSafeStream(stream) })],
  });
  // winston drops a line below its level only inside its stream pipeline, after building it:
  // ~90 µs per call, and the loop logs one debug line per reconcile (a resync over thousands of
  // containers). Below debug, debug lines stop here.
  const debug = logger.debug.bind(logger);
  logger.debug = ((...args: Parameters<winston.LeveledLogMethod>) => (logger.isDebugEnabled() ? debug(...args) : logger)) as winston.LeveledLogMethod;
  return logger;
}
