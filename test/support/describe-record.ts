/** What `acetate describe NAME -o json` says of a container, as a user reads it. */
import assert from 'node:assert/strict';
import type { StatusRecord } from '../../src/contracts/status-record.js';
import { runCli, type CliOptions } from './cli.js';

/** The container's record; fails the test when describe does not answer with one. */
export async function describeRecord(name: string, opts: CliOptions): Promise<StatusRecord> {
  const r = await runCli(['describe', name, '-o', 'json'], opts);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusRecord;
}

/** The record's Ready condition, if it has one. */
export function readyCondition(rec: StatusRecord): NonNullable<StatusRecord['status']['conditions']>[number] | undefined {
  return rec.status.conditions?.find((c) => c.type === 'Ready');
}
