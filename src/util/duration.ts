/** Durations as people write them in flags and read them in plans and logs. */

/**
 * Parses "30s", "100ms", "5m", "1h", "1m30s"; a bare number is in `bareUnit` (seconds, as the
 * CLI's flags document, unless said otherwise). Kept by hand: `ms` cannot read "1m30s", and
 * `parse-duration` reads "10s later" as 10 s, so a typo in a flag would pass silently.
 */
export function parseDuration(text: string, opts: { bareUnit?: 'ms' | 's' } = {}): number {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * (opts.bareUnit === 'ms' ? 1 : 1000));
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n * 3_600_000;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== s.length) throw new Error(`'${text}' is not a duration such as 30s, 500ms or 5m`);
  return Math.round(total);
}

/** Formats milliseconds the way parseDuration reads them: "30s", "1m30s", "250ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}
