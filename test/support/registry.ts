// Lives in bench/lib/registry.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/registry.js';

import assert from 'node:assert/strict';
import { registryProcessesOf, type TestRegistry } from '../../bench/lib/registry.js';

/** Stops the registry and asserts that no process of it is left. */
export async function stopRegistryAndAssertGone(reg: TestRegistry): Promise<void> {
  await reg.stop();
  assert.deepEqual(await registryProcessesOf(reg.dir), [], 'registry process stopped');
}
