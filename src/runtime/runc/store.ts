/**
 * The per-container files acetate itself keeps: record.json (the AppliedRecord; its presence is
 * what makes a container exist for acetate) and status.json (start count, last exit). Writes are
 * atomic (see util/json-file.ts), so a SIGKILL never leaves a torn file.
 */
import { readJson } from '../../util/json-file.js';
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

export function readRecord(file: string): Promise<AppliedRecord | undefined> {
  return readJson<AppliedRecord>(file);
}

export async function readStatus(file: string): Promise<ContainerStatusFile> {
  return (await readJson<ContainerStatusFile>(file)) ?? { starts: 0 };
}

export function restartCountOf(status: ContainerStatusFile): number {
  return Math.max(0, status.starts - 1);
}
