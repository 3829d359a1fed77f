/**
 * A process that allocates id ranges (walls/id-ranges.ts) for `count` new containers of a state
 * dir, three at a time, and prints what each got as JSON lines: what the concurrency test of
 * test/unit/id-ranges.test.ts runs twice at once against one records file. Every other round it
 * lets go of the records lock it keeps for a burst (id-lock.ts), so the two processes interleave.
 *
 * With CLAIMS_DIR and NODE_LOCK, the node's claims too (id-claims.ts): what test/unit/id-claims.test.ts
 * runs at once from two instances given two records files.
 *
 * Usage: node id-alloc-worker.js RECORDS_FILE CONTAINERS_DIR PREFIX COUNT POOL_FIRST POOL_SIZE [CLAIMS_DIR NODE_LOCK]
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { assignIdRange } from '../../src/runtime/walls/id-ranges.js';
import { releaseIdRecordsLocks } from '../../src/runtime/walls/id-lock.js';

async function main(): Promise<void> {
  const [recordsFile, containersDir, prefix, count, first, size, claimsDir, nodeLock] = process.argv.slice(2) as [
    string,
    string,
    string,
    string,
    string,
    string,
    string?,
    string?,
  ];
  const store = {
    recordsFile,
    containersDir,
    pool: { hostID: Number(first), size: Number(size) },
    ...(claimsDir && nodeLock ? { claims: { dir: claimsDir, lockFile: nodeLock } } : {}),
  };
  for (let i = 0; i < Number(count); i += 3) {
    const names = [i, i + 1, i + 2].filter((k) => k < Number(count)).map((k) => `default_${prefix}${k}`);
    const got = await Promise.all(
      names.map(async (n) => {
        const dir = path.join(containersDir, n);
        await mkdir(dir, { recursive: true });
        return { container: n, range: await assignIdRange(store, dir, true) };
      }),
    );
    for (const g of got) process.stdout.write(`${JSON.stringify(g)}\n`);
    if ((i / 3) % 2 === 1) releaseIdRecordsLocks();
  }
  releaseIdRecordsLocks();
}

main().catch((err) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
