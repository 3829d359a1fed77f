/** One problem found in a Container object: where (field path) and what, in plain words. */
/** One step of a field path: a key, or an index in a list. */
export type PathSegment = string | number;

export interface ValidationIssue {
  /** Field path as segments, e.g. ['spec', 'resources', 'memory']. */
  path: PathSegment[];
  /** Dotted form, e.g. spec.env[0].name. */
  field: string;
  message: string;
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out || '(document)';
}

export function issue(path: PathSegment[], message: string): ValidationIssue {
  return { path, field: formatPath(path), message };
}

/** A value as shown in a message: short, and never by serializing a whole structure (alias bombs). */
export function show(v: unknown): string {
  if (typeof v === 'string') return v.length > 60 ? `'${v.slice(0, 57)}...'` : `'${v}'`;
  if (v && typeof v === 'object') return typeName(v);
  return String(v);
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

export function isRecord(v: unknown): v is Record<string, unknown> & object {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}
