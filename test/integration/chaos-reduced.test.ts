/**
 * The reliability suite, reduced for CI (well under 2 minutes): the whole bad-input corpus in one
 * directory through validate and apply next to a running container, 2 seeded SIGKILL trials
 * during apply of 12 containers, one runc fault, the bridge plugin SIGKILLed once during each of
 * ADD, CHECK and DEL. The full suite is `npm run test:chaos`.
 */
import { Rng, chaosSeed } from '../chaos/lib.js';
import { badInputs } from '../chaos/corpus.js';
import { checkAllAtOnce, startKeeper, stopKeeper, type Keeper } from '../chaos/corpus-check.js';
import { applyCrashTrial, describeStats, setupCrashSuite, teardownCrashSuite, type CrashSuite } from '../chaos/crash.js';
import { runcStartFails } from '../chaos/faults.js';
import { describeNetStats, netCrashTrial, netRebootTrial, setupNetSuite, teardownNetSuite, type NetSuite } from '../chaos/network-crash.js';
import { skipBecause } from '../support/prerequisites.js';
import {
  describePluginKillStats,
  pluginKillTrial,
  setupPluginKillSuite,
  teardownPluginKillSuite,
  type PluginKillSuite,
  type CniOp,
} from '../chaos/network-plugin-kill.js';

describe('reliability (reduced; full suite: npm run test:chaos)', function () {
  this.timeout(120_000);

  describe('bad input corpus', () => {
    let k: Keeper | undefined;
    before(async () => {
      k = await startKeeper();
    });
    after(() => stopKeeper(k));

    it(`reports all ${badInputs().length} bad inputs at once, without crashing or touching the running container`, async () => {
      await checkAllAtOnce(k!, badInputs());
    });
  });

  describe('SIGKILL during apply', function () {
    let failed = false;
    afterEach(function () {
      if (this.currentTest?.state === 'failed') failed = true;
    });
    const rng = new Rng(chaosSeed('reduced/crash'));
    let s: CrashSuite | undefined;
    before(async () => {
      s = await setupCrashSuite(12, 4);
    });
    after(async () => {
      if (s) console.log(`      ${describeStats(s.stats)}`);
      await teardownCrashSuite(s);
    });
    for (let t = 1; t <= 2; t++) {
      it(`trial ${t}: converges after a SIGKILL at a random moment, nothing lost, duplicated or leaked`, function () {
        if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
        return applyCrashTrial(s!, rng.fork(`t${t}`), t, (m) => console.log(`      ${m}`));
      });
    }
  });

  it('runc fails to start one container: reported, the others converge, nothing leaks', runcStartFails);

  describe('network bridge: SIGKILL during apply, and a reboot', function () {
    const rng = new Rng(chaosSeed('reduced/network'));
    let s: NetSuite | undefined;
    before(async () => {
      s = await setupNetSuite(4);
    });
    after(async () => {
      if (s) console.log(`      ${describeNetStats(s.stats)}`);
      await teardownNetSuite(s);
    });
    it('converges after a SIGKILL: addresses kept, nothing of a removed container left', () =>
      netCrashTrial(s!, rng.fork('t1'), 1, (m) => console.log(`      ${m}`)));
    it('after a reboot the survivors get their addresses back, nothing of the removed left', () =>
      netRebootTrial(s!, rng.fork('r1'), 1, (m) => console.log(`      ${m}`)));
  });

  describe('CNI bridge plugin SIGKILLed during ADD, CHECK and DEL', function () {
    const rng = new Rng(chaosSeed('reduced/cni-plugins'));
    let s: PluginKillSuite | undefined;
    before(async () => {
      s = await setupPluginKillSuite();
    });
    after(async () => {
      if (s) console.log(`      ${describePluginKillStats(s.stats)}`);
      await teardownPluginKillSuite(s);
    });
    (['ADD', 'CHECK', 'DEL'] as CniOp[]).forEach((op, i) => {
      it(`bridge killed during ${op}${op === 'DEL' ? ' (address released, veth gone, masquerade rules not yet removed)' : ''}: retried, it converges; nothing of the removed container is left (nat, filter, lease, veth, namespace, claim, holder)`, async () => {
        await pluginKillTrial(s!, rng.fork(`cni-${op}`), i + 1, (m) => console.log(`      ${m}`), {
          op,
          plugin: 'bridge',
          ...(op === 'DEL' ? { when: 'iptables' as const } : {}),
        });
      });
    });
  });
});
