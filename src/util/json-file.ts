/**
 * acetate's own JSON files (container records, image records and refs, network state): written
 * atomically, read through a cache that parses a file once per change (see stat-cache.ts).
 */
import { readSmallFileNow, writeSmallFileAtomic } from './small-file.js';
import { ParsedFileCache } from './stat-cache.js';

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeSmallFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${file} is not valid JSON`, { cause: err });
  }
}

const jsonFiles = new ParsedFileCache<unknown>(parseJson);

/** The parsed files, kept across processes by runc/read-cache.ts (each entry checked against its file's stamp at use). */
export const jsonFilesCache: Pick<ParsedFileCache<unknown>, 'exportEntries' | 'importEntries' | 'generation'> = jsonFiles;

/** Parsed JSON, or undefined when the file does not exist. The value is shared: do not modify it. */
export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return jsonFiles.read(file) as T | undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return undefined;
    if (code === undefined) throw err; // not valid JSON (parseJson's error names the file)
    throw new Error(`cannot read ${file}`, { cause: err });
  }
}

/**
 * Parsed JSON read now and not kept (undefined when the file does not exist): for files read
 * only at a start or a rare pass, whose values readJson's cache would hold for the process's life
 * (each host-template container's host-view.json: ~3 KB parsed, ~7.5 MB of the loop's heap at 2,500).
 */
export async function readJsonUncached<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = readSmallFileNow(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new Error(`cannot read ${file}`, { cause: err });
  }
  return parseJson(text, file) as T;
}

/** Drop remembered contents of removed files. */
export function forgetFiles(files: readonly string[]): void {
  for (const f of files) jsonFiles.forget(f);
}
