/**
 * Parses a YAML (or JSON) text into documents with js-yaml and remembers where each field
 * stands, so validation errors can name the line of the exact field.
 */
import type { LoadOptions, YAMLException } from 'js-yaml';
import { jsYaml } from '../../util/lazy-yaml.js';
import type { PathSegment } from '../../api/validation-issue.js';

export interface YamlDocument {
  value: unknown;
  /** 1-based line where the document starts. */
  line: number;
  /** 1-based line of the field at `path` (or of its nearest ancestor that exists). */
  lineOf(path: readonly PathSegment[]): number;
}

export class YamlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'YamlSyntaxError';
  }
}

interface Frame {
  line: number;
  children: { result: unknown; line: number }[];
}

/** For each parsed mapping/sequence: the line of each key/index (0-based). */
type LineTable = WeakMap<object, Map<PathSegment, number>>;

export function parseYamlDocuments(text: string, filename: string): YamlDocument[] {
  const table: LineTable = new WeakMap();
  const roots: { result: unknown; line: number }[] = [];
  const stack: Frame[] = [];
  const listener = (event: string, state: { line: number; result: unknown }): void => {
    if (event === 'open') {
      stack.push({ line: state.line, children: [] });
      return;
    }
    const frame = stack.pop();
    if (!frame) return;
    const result = state.result;
    if (result && typeof result === 'object') recordLines(table, result, frame);
    const entry = { result, line: frame.line };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(entry);
    else roots.push(entry);
  };
  let values: unknown[];
  try {
    values = jsYaml().loadAll(text, undefined, { filename, json: false, listener } as LoadOptions);
  } catch (err) {
    if (err instanceof jsYaml().YAMLException) {
      const mark = (err as YAMLException & { mark?: { line: number; column: number } }).mark;
      throw new YamlSyntaxError(err.reason || err.message, (mark?.line ?? 0) + 1, (mark?.column ?? 0) + 1, { cause: err });
    }
    throw err;
  }
  return values.map((value, i) => {
    const root = roots.find((r) => r.result === value && value !== null && typeof value === 'object') ?? roots[i];
    const startLine = root?.line ?? 0;
    return {
      value,
      line: startLine + 1,
      lineOf(path: readonly PathSegment[]): number {
        let node: unknown = value;
        let line = startLine;
        for (const seg of path) {
          if (!node || typeof node !== 'object') break;
          const lines = table.get(node);
          const l = lines?.get(seg);
          if (l === undefined) break;
          line = l;
          node = (node as Record<string | number, unknown>)[seg];
        }
        return line + 1;
      },
    };
  });
}

function recordLines(table: LineTable, result: object, frame: Frame): void {
  const lines = new Map<PathSegment, number>();
  if (Array.isArray(result)) {
    frame.children.forEach((c, i) => lines.set(i, c.line));
  } else {
    // Mapping children arrive as key, value, key, value...
    for (let i = 0; i + 1 < frame.children.length; i += 2) {
      const key = frame.children[i]!;
      lines.set(String(key.result), key.line);
    }
  }
  table.set(result, lines);
}
