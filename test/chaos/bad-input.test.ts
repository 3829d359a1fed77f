/**
 * The whole bad-input corpus (corpus.ts), each case alone through `acetate validate` and
 * `acetate apply` next to a running keeper container, then (when `acetate run` exists) all of
 * them dropped into the directory a running loop watches.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { badInputs, categoriesOf } from './corpus.js';
import { assertKeeperUntouched, checkCase, clearCases, startKeeper, stopKeeper, type Keeper } from './corpus-check.js';
import { spawnCli, waitFor, type RunningCli } from './lib.js';

const cases = badInputs();

describe(`chaos: bad input corpus (${cases.length} inputs)`, function () {
  this.timeout(300_000);
  let k: Keeper | undefined;
  const passed: string[] = [];

  before(async () => {
    k = await startKeeper();
  });
  after(async () => {
    console.log(`      ${passed.length}/${cases.length} inputs handled: ${[...categoriesOf(cases)].map(([c, n]) => `${c} ${n}`).join(', ')}`);
    await stopKeeper(k);
  });

  for (const c of cases) {
    it(`${c.category}: ${c.what} → ${c.expect === 'error' ? 'clear error' : 'ignored'}, keeper untouched`, async () => {
      await checkCase(k!, c);
      passed.push(c.id);
    });
  }
});

describe('chaos: bad input under acetate run', function () {
  this.timeout(300_000);
  let k: Keeper | undefined;
  let loop: RunningCli | undefined;

  before(async () => {
    k = await startKeeper();
    loop = spawnCli(['run', '-f', k.dir, '--metrics-addr', '0', '--log-format', 'json', '--debounce', '50ms'], { stateDir: k.stateDir });
    await waitFor(() => loop!.out().includes('ready: first sync done'), { what: 'acetate run ready', timeoutMs: 30_000 });
  });
  after(async () => {
    if (loop && loop.child.exitCode === null) {
      loop.child.kill('SIGTERM');
      await loop.exited;
    }
    await stopKeeper(k);
  });

  it('reports every bad file (all dropped in at once), keeps running, never touches the keeper', async () => {
    const files = new Map<string, string>();
    for (const c of cases.filter((x) => x.expect === 'error')) {
      const sub = path.join(k!.dir, `case-${c.id}`);
      await mkdir(sub);
      files.set(c.id, await c.write(sub));
    }
    const unreported = (): string[] => [...files].filter(([, f]) => !loop!.out().includes(f) && !loop!.err().includes(f)).map(([id]) => id);
    await waitFor(() => unreported().length === 0, { what: 'the loop to report every bad file', timeoutMs: 30_000, intervalMs: 200 }).catch((err: unknown) => {
      throw new Error(`acetate run did not report ${unreported().length} of ${files.size} bad files: ${unreported().join(', ')}`, { cause: err });
    });
    assert.equal(loop!.child.exitCode, null, `acetate run exited:\n${loop!.err().slice(-3000)}`);
    await assertKeeperUntouched(k!, 'all bad inputs under run');
    await clearCases(k!.dir);
    assert.equal(loop!.child.exitCode, null, 'acetate run is still running');
    await assertKeeperUntouched(k!, 'after the bad inputs were removed');
  });
});
