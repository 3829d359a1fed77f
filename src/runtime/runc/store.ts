/**
 * The per-container files acetate itself keeps: record.json (the AppliedRecord; its presence is
 * what makes a container exist for acetate) and status.json (start count, last exit). Writes are
 * atomic (temp file + rename), so a SIGKILL never leaves a torn file.
 */
import { readSmallFile } from '../../util/small-file.js';
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import type { AppliedRecord } from '../runtime.js';

export interface ContainerStatusFile {
  /** Successful starts since the record was created; restartCount = starts - 1. */
  starts: number;
  startedAt?: string;
  finishedAt?: string;
  lastExitCode?: number;
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new Error(`cannot write ${file}`, { cause: err });
  }
}

/** Parsed JSON, or undefined when the file does not exist. */
export async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readSmallFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new Error(`cannot read ${file}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${file} is not valid JSON`, { cause: err });
  }
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
