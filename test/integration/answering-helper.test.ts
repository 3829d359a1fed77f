/**
 * The long-lived helpers' common side (src/util/answering-helper.ts), on a helper that never
 * answers, in a process with nothing else to keep it alive (as `acetate apply` is once its
 * requests are sent): the request must fail with the reason, not leave the process to exit
 * silently with the request unsettled.
 */
import assert from 'node:assert/strict';
import { runNodeScript, srcModule } from '../support/node-script.js';

describe('answering helper: a silent helper', function () {
  this.timeout(30_000);

  it('is killed at the time limit, and the request fails saying so, even with nothing else keeping Node alive', async () => {
    const code = `import(${JSON.stringify(srcModule('util/answering-helper.js'))}).then(async (m) => {
      const h = new m.AnsweringHelper({ program: '/bin/sh', args: ['-c', 'exec cat >/dev/null'], name: 'the silent helper', error: (msg, o) => new Error(msg, o) });
      try { await h.request(['x'], 300); console.log('answered'); } catch (err) { console.log('failed: ' + err.message); }
    })`;
    const { exitCode, stdout } = await runNodeScript(code, 20_000);
    assert.match(stdout, /^failed: the silent helper \(pid \d+\) gave no answer within 300 ms: killed\n$/);
    assert.equal(exitCode, 0);
  });
});
