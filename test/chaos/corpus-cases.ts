/**
 * What the bad-input corpus (corpus.ts, corpus-isolation.ts) is made of: a case, its category, and
 * the helpers that write one into the manifest dir.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type Category =
  | 'yaml-syntax'
  | 'wrong-types'
  | 'unknown-fields'
  | 'huge'
  | 'deep-nesting'
  | 'binary'
  | 'duplicates'
  | 'names'
  | 'path-traversal'
  | 'resources'
  | 'symlinks'
  | 'other';

export interface BadInput {
  id: string;
  category: Category;
  what: string;
  /** Writes the input into the manifest dir; returns the path the error must name. */
  write(dir: string): Promise<string>;
  /**
   * 'error': `validate` and `apply` exit 1 and print `error: <path>[:line]: ...message...`.
   * 'ignored': not a manifest at all (device, fifo, other API): no error, nothing created, no hang.
   */
  expect: 'error' | 'ignored';
  /** The problem line must match (after the path). */
  message?: RegExp;
  /** The case declares the keeper's own key (conflict or invalid redeclaration). */
  touchesKeeper?: boolean;
}

/** A valid manifest, with `spec` lines appended (each indented by two spaces) and the name replaced. */
export function manifest(name: string, extraSpec = '', meta = ''): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
${meta}spec:
  template: host
  command: ["/bin/sleep", "1000000"]
  terminationGracePeriodSeconds: 0
${extraSpec}`;
}

/** Writes `name` (under the manifest dir) with content; returns its path. */
export function file(name: string, content: string | Buffer | (() => string | Buffer)): (dir: string) => Promise<string> {
  return async (dir) => {
    const p = path.join(dir, name);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, typeof content === 'function' ? content() : content);
    return p;
  };
}

/** A case that must be reported as an error whose line matches message. */
export const c = (id: string, category: Category, what: string, write: BadInput['write'], message: RegExp, extra: Partial<BadInput> = {}): BadInput => ({
  id,
  category,
  what,
  write,
  expect: 'error',
  message,
  ...extra,
});

/** A case that is not a manifest at all: nothing reported, nothing created. */
export const ignored = (id: string, category: Category, what: string, write: BadInput['write']): BadInput => ({ id, category, what, write, expect: 'ignored' });
