/**
 * Untrusted text made safe to print on a terminal.
 *
 * Every string a container, probe, image, registry or repository supplies (probe output, an
 * image's `User` or `Env`, a registry's error body, a file name in a layer) may hold control
 * characters. Printed raw, ESC (0x1b) or a C1 CSI (0x9b) starts an escape sequence: clear the
 * screen, set the window title, write the clipboard (OSC 52), hide text — the CVE-2021-25743
 * class that kubectl escapes in get/describe since 1.26. And it may be huge (a registry index
 * of 17k platforms quoted in one error).
 *
 * So, as Go's strconv.Quote does for non-printables, each C0 control (0x00-0x1f), DEL and C1
 * control (0x80-0x9f) is written as a visible escape: `\n`, `\t`, `\r`..., `\x1b` for the other
 * C0, `\u009b` for DEL and C1. Bidirectional overrides (U+202A-U+202E, U+2066-U+2069) are
 * escaped in fields too: they reorder what the terminal shows (a name that reads backwards).
 * Backslashes are left as they are: the result is for people to read, not to parse back.
 *
 * Written here rather than taken from a library: the ones on npm (strip-ansi, ansi-regex)
 * remove only well-formed ANSI sequences, which leaves a lone ESC, C1 controls and malformed
 * sequences that terminals still act on; escaping every control character is both simpler and
 * complete.
 */

/** What one field shows at most (characters of the escaped text) before the truncation marker. */
export const MAX_FIELD_CHARS = 1024;
/** What one error message shows at most: enough for a chain of causes, not a 441 KB index. */
export const MAX_ERROR_CHARS = 4096;

const NAMED: Record<number, string> = { 0x07: '\\a', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0b: '\\v', 0x0c: '\\f', 0x0d: '\\r' };

/** In a field (one line): every control, bidi overrides too. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_FIELD = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** In a block of lines: the same but newline and tab, which shape the text. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_BLOCK = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/**
 * In whole command output (see TerminalSafeStream): controls except newline and tab. DEL and C1
 * become `\u00XX`, so JSON output stays valid JSON of the same data (JSON.stringify leaves them
 * raw; it never leaves a raw C0), and js-yaml already escapes all of them itself.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_OUTPUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** The visible form of one control character. */
export function escapeControl(code: number): string {
  const named = NAMED[code];
  if (named) return named;
  return code < 0x20 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

function truncationMarker(more: number): string {
  return `…[${more} more characters cut]`;
}

function escapeBounded(s: string, unsafe: RegExp, max: number): string {
  // The escaped text is never shorter than what it escapes: at most `max` input characters matter.
  const head = s.length > max ? s.slice(0, max) : s;
  if (!unsafe.test(head)) {
    if (head.length === s.length) return s;
    // Never cut between the two halves of a surrogate pair.
    const cut = /[\ud800-\udbff]$/.test(head) ? head.length - 1 : head.length;
    return s.slice(0, cut) + truncationMarker(s.length - cut);
  }
  let out = '';
  let used = 0;
  while (used < head.length) {
    const code = head.charCodeAt(used);
    let piece: string;
    if (code >= 0xd800 && code <= 0xdbff && used + 1 < s.length) piece = s.slice(used, used + 2);
    else {
      const ch = head[used]!;
      piece = unsafe.test(ch) ? escapeControl(code) : ch;
    }
    if (out.length + piece.length > max) break;
    out += piece;
    used += piece.length === 2 && code >= 0xd800 && code <= 0xdbff ? 2 : 1;
  }
  return used < s.length ? out + truncationMarker(s.length - used) : out;
}

/**
 * One field for a terminal (a table cell, a `describe` value, a log field): every control
 * character escaped, newlines too (a value cannot forge a line of its own), at most `max`
 * characters before a marker saying how many more were cut.
 */
export function terminalText(s: string, max = MAX_FIELD_CHARS): string {
  return escapeBounded(s, UNSAFE_FIELD, max);
}

/** Several lines for a terminal (an error with its causes): as terminalText but newlines and tabs kept. */
export function terminalLines(s: string, max = MAX_ERROR_CHARS): string {
  return escapeBounded(s, UNSAFE_BLOCK, max);
}

/** Whole command output: control characters but newline and tab escaped, nothing cut. */
export function escapeOutput(s: string): string {
  return s.replace(UNSAFE_OUTPUT, (c) => escapeControl(c.charCodeAt(0)));
}
