/**
 * What of a manifest's own text may appear in an error: a short excerpt with control characters
 * escaped. Field paths and messages are built from keys and values of the file (an unknown key is
 * named in the field path), and they end up in terminals, logs and status for anyone who can read
 * them: a file's content is never quoted beyond this.
 */

/** Longest field path kept (longer ones are cut, with an ellipsis). */
export const MAX_FIELD_CHARS = 80;
/** Longest message kept. */
export const MAX_MESSAGE_CHARS = 300;

/** Escapes control characters (C0, DEL, C1, and the Unicode line/paragraph separators and bidi controls). */
export function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** An escaped excerpt of at most max characters (cut with an ellipsis). */
export function excerpt(s: string, max: number): string {
  const escaped = escapeControl(s);
  return escaped.length <= max ? escaped : `${escaped.slice(0, max - 1)}…`;
}
