/**
 * Network crash trials (see network-crash.ts): ACETATE_CHAOS_NET_CONTAINERS (12),
 * ACETATE_CHAOS_NET_TRIALS (8 SIGKILL trials, then 2 reboots); CNI plugins SIGKILLed during ADD,
 * CHECK and DEL (network-plugin-kill.ts): ACETATE_CHAOS_PLUGIN_TRIALS (15).
 */
import { Rng, chaosSeed } from './lib.js';
import { describeNetStats, netCrashTrial, netRebootTrial, setupNetSuite, teardownNetSuite, type NetSuite } from './network-crash.js';
import { skipBecause } from '../support/prerequisites.js';
import { describePluginKillStats, pluginKillTrial, setupPluginKillSuite, teardownPluginKillSuite, type PluginKillSuite } from './network-plugin-kill.js';

const N = Number(process.env.ACETATE_CHAOS_NET_CONTAINERS ?? 12);
const TRIALS = Number(process.env.ACETATE_CHAOS_NET_TRIALS ?? 8);
const log = (m: string): void => console.log(`      ${m}`);

describe(`chaos: network bridge, SIGKILL during apply and reboots (${N} containers, ${TRIALS} + 2 trials)`, function () {
  this.timeout(900_000);
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  const rng = new Rng(chaosSeed('crash/network'));
  let s: NetSuite | undefined;
  before(async () => {
    s = await setupNetSuite(N);
    log(`created ${N} bridge containers with published ports in ${s.fullApplyMs} ms`);
  });
  after(async () => {
    if (s) log(describeNetStats(s.stats));
    await teardownNetSuite(s);
  });
  for (let t = 1; t <= TRIALS; t++) {
    it(`trial ${t}: converges after a SIGKILL; addresses kept, no namespace, lease, veth, claim or rule of a removed container`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await netCrashTrial(s!, rng.fork(`net-${t}`), t, log);
    });
  }
  for (let t = 1; t <= 2; t++) {
    it(`reboot ${t}: survivors get their addresses back, nothing of the removed is left`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await netRebootTrial(s!, rng.fork(`reboot-${t}`), t, log);
    });
  }
});

const PLUGIN_TRIALS = Number(process.env.ACETATE_CHAOS_PLUGIN_TRIALS ?? 15);

describe(`chaos: CNI plugins SIGKILLed during ADD, CHECK and DEL (${PLUGIN_TRIALS} seeded trials)`, function () {
  this.timeout(900_000);
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  const rng = new Rng(chaosSeed('crash/cni-plugins'));
  let s: PluginKillSuite | undefined;
  before(async () => {
    s = await setupPluginKillSuite();
  });
  after(async () => {
    if (s) log(describePluginKillStats(s.stats));
    await teardownPluginKillSuite(s);
  });
  for (let t = 1; t <= PLUGIN_TRIALS; t++) {
    it(`trial ${t}: the operation retried converges; nothing of the removed container is left (nat, filter, lease, veth, namespace, claim, holder)`, async function () {
      if (failed) skipBecause(this, 'an earlier trial failed; the rest would only repeat it');
      await pluginKillTrial(s!, rng.fork(`cni-${t}`), t, log);
    });
  }
});
