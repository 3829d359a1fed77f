/**
 * The per-container files acetate itself keeps: record.json (the AppliedRecord; its presence is
 * what makes a container exist for acetate) and status.json (start count, last exit). Writes are
 * atomic (temp file + rename), so a SIGKILL never leaves a torn file.
 */
import { writeSmallFileAtomic } from '../../util/small-file.js';
import { ParsedFileCache } from '../../util/stat-cache.js';
import type { AppliedRecord } from '../runtime.js';

export interface ContainerStatusFile {
  /** Successful starts since the record was created; restartCount = starts - 1. */
  starts: number;
  startedAt?: string;
  finishedAt?: string;
  lastExitCode?: number;
  /** Why the last run ended beyond its code (`OOMKilled`). */
  lastReason?: string;
  /** The boot the last start happened in (see supervision.ts): a run of an earlier boot ended with it. */
  bootId?: string;
}

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

/** acetate's own files, parsed once per change (see util/stat-cache.ts). */
const jsonFiles = new ParsedFileCache<unknown>(parseJson);

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

/** Drop remembered contents of removed files. */
export function forgetFiles(files: readonly string[]): void {
  for (const f of files) jsonFiles.forget(f);
}

export function readRecord(file: string): Promise<AppliedRecord | undefined> {
  return readJson<AppliedRecord>(file);
}

export async function readStatus(file: string): Promise<ContainerStatusFile> {
  return (await readJson<ContainerStatusFile>(file)) ?? { starts: 0 };
}

export function restartCountOf(status: ContainerStatusFile): number {
  return Math.max(0, status.starts - 1);
}
