/**
 * Two processes on one state dir (issue 10): every process that changes the node holds the one
 * lock; a second one exits 1 naming the holder (or waits with --wait); read-only commands never
 * wait for it nor disturb it. Each case creates 40 containers and checks from the host: every
 * container exactly once, one conmon each, each process started exactly once, no restart.
 * Sizes: ACETATE_CHAOS_LOCK_CONTAINERS (40).
 */
import assert from 'node:assert/strict';
import { assertNoCrash, runCli, spawnCli } from './lib.js';
import { assertExactlyOnce, assertLoser, makeBed, names, readOnlyLoops, startLoop, teardownBed, writeCounting, type Bed } from './concurrency.js';

const N = Number(process.env.ACETATE_CHAOS_LOCK_CONTAINERS ?? 40);
const log = (m: string): void => console.log(`      ${m}`);

describe(`chaos: two processes on one state dir (${N} containers)`, function () {
  this.timeout(600_000);
  let b: Bed | undefined;
  afterEach(async () => {
    await teardownBed(b);
    b = undefined;
  });

  it('apply + apply started at once: one converges, the other exits 1 naming it; with --wait both succeed', async () => {
    b = await makeBed();
    const list = names(N);
    await writeCounting(b.dir, list);
    const args = ['apply', '-f', b.dir, '--concurrency', '8'];
    const [x, y] = [spawnCli(args, { stateDir: b.stateDir }), spawnCli(args, { stateDir: b.stateDir })];
    const [rx, ry] = await Promise.all([x.exited, y.exited]);
    const results = [
      { ...rx, stderr: x.err() },
      { ...ry, stderr: y.err() },
    ];
    for (const r of results) assertNoCrash(r, 'apply');
    const winner = results.findIndex((r) => r.code === 0);
    assert.ok(winner >= 0, `no apply succeeded:\n${results.map((r) => r.stderr).join('\n---\n')}`);
    const winnerPid = [x, y][winner]!.child.pid;
    assertLoser(results[1 - winner]!, new RegExp(`in use by pid ${winnerPid} \\(acetate .*apply -f`));
    await assertExactlyOnce(b.stateDir, list);

    // --wait: the second one waits for the first, then finds nothing to do.
    const more = names(N / 2, 'w');
    await writeCounting(b.dir, more);
    const [p, q] = [spawnCli([...args, '--wait'], { stateDir: b.stateDir }), spawnCli([...args, '--wait'], { stateDir: b.stateDir })];
    const [rp, rq] = await Promise.all([p.exited, q.exited]);
    assert.deepEqual([rp.code, rq.code], [0, 0], `${p.err()}\n---\n${q.err()}`);
    assert.ok(/waiting for pid \d+/.test(p.err() + q.err()), 'neither said it waited');
    await assertExactlyOnce(b.stateDir, [...list, ...more]);
  });

  it('run + apply looping while 40 files appear: apply exits 1 naming the loop each time; run creates each container once', async () => {
    b = await makeBed();
    const loop = await startLoop(b, ['--allow-empty']);
    const list = names(N);
    let losers = 0;
    for (let i = 0; i < list.length; i += 10) {
      await writeCounting(b.dir, list.slice(i, i + 10));
      const r = await runCli(['apply', '-f', b.dir, '--concurrency', '8'], { stateDir: b.stateDir });
      assertNoCrash(r, 'apply');
      assertLoser(r, new RegExp(`in use by pid ${loop.child.pid} \\(acetate .*run -f`));
      losers++;
    }
    await assertExactlyOnce(b.stateDir, list);
    const again = await runCli(['run', '-f', b.dir, '--metrics-addr', '0'], { stateDir: b.stateDir });
    assertLoser(again, new RegExp(`in use by pid ${loop.child.pid}`));
    log(`${losers} applies and one second run refused while the loop converged ${N} containers`);
  });

  it('run + loops of plan/get/describe while 40 containers are created: none waits, none disturbs the loop', async () => {
    b = await makeBed();
    const loop = await startLoop(b, ['--allow-empty']);
    const list = names(N);
    let written: string[] = [];
    const readers = readOnlyLoops(b, () => written);
    for (let i = 0; i < list.length; i += 5) {
      const batch = list.slice(i, i + 5);
      await writeCounting(b.dir, batch);
      written = [...written, ...batch];
    }
    await assertExactlyOnce(b.stateDir, list);
    const runs = await readers.stop();
    assert.ok(runs >= 10, `only ${runs} read-only commands ran`);
    assert.doesNotMatch(loop.out(), /"level":"(error)"/, 'the loop logged an error');
    log(`${runs} plan/get/describe runs next to the loop`);
  });
});
