/**
 * Runtime faults, full suite: runc failing or hanging on chosen calls, random runc failures during
 * rounds of random changes, a full disk under the state dir, a template removed underneath.
 * Replay with ACETATE_CHAOS_SEED.
 */
import { Rng, chaosSeed } from './lib.js';
import { diskFull, faultStats, randomRuncFaults, runcFailsUnderLoop, runcHangs, runcStartFails, runcUpdateFails, templateRemoved } from './faults.js';

describe('chaos: runtime faults', function () {
  this.timeout(600_000);
  const rng = new Rng(chaosSeed('faults'));

  after(() => {
    console.log(
      `      ${faultStats.scenarios} fault scenarios, ${faultStats.faultsInjected} runc faults injected, ${faultStats.containersLost} declared containers lost`,
    );
  });

  it('runc fails to start one container: reported, the others converge, nothing half-created leaks', runcStartFails);
  it('under acetate run, starting one container keeps failing in runc: reported, retried with back-off, the loop survives and converges', runcFailsUnderLoop);
  it('runc update fails: the container keeps its process and old limit, resized in place later', runcUpdateFails);
  it('runc hangs on update: that container times out, the others converge', runcHangs);
  it('random runc failures (25% of create/start/kill/delete/update/state/list) over 8 rounds of random changes', () =>
    randomRuncFaults(rng.fork('random'), 8, 12));
  it('the state dir fills up: errors say so, nothing declared is lost, converges when space returns', diskFull);
  it('the template of running containers is deleted underneath: reported, not destroyed, converges when re-imported', templateRemoved);
});
