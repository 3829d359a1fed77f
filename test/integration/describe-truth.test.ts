/**
 * `describe` reads the same truth as `get` in every mode: after `apply` alone (no `run` ever), and
 * after a `run` that has stopped and left its record behind while `apply` changed the container.
 * The real CLI on real containers, as a user would compare the two.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { type CliDirs, cliDirs } from '../support/tmp-state.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { flatContainers, type FlatContainer } from '../support/get.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

describe('describe reads what get reads (real runc, real CLI)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let dir: string;
  let dirs: CliDirs;
  let run: CliProcess | undefined;

  const cli = (args: string[]) => runCli(args, { stateDir });
  const get = async (name: string): Promise<FlatContainer> => {
    const r = await cli(['get', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return flatContainers(r.stdout)[0]!;
  };
  const describeJson = async (name: string): Promise<StatusRecord> => {
    const r = await cli(['describe', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusRecord;
  };
  const describeText = async (name: string): Promise<string> => {
    const r = await cli(['describe', name]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const line = (text: string, field: string) => new RegExp(`^\\s*${field}:\\s+(.*)$`, 'm').exec(text)?.[1];

  beforeEach(async () => {
    ({ stateDir, dir } = dirs = await cliDirs());
  });
  afterEach(async () => {
    await run?.stop();
    run = undefined;
    await dirs.cleanupAndAssertNoLeaks();
  });

  it('after apply alone: a running and a stopped declared container have the phase and desired spec get shows', async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { script: 'exec sleep 100001' }));
    await writeFile(path.join(dir, 'off.yaml'), manifest('off', { state: 'Stopped' }));
    const r = await cli(['apply', '-f', dir]);
    assert.equal(r.code, 0, r.stderr);
    for (const [name, phase, state] of [
      ['web', 'Running', 'Running'],
      ['off', 'Stopped', 'Stopped'],
    ] as const) {
      const g = await get(name);
      assert.equal(g.phase, phase);
      const d = await describeJson(name);
      assert.equal(d.status.phase, g.phase, `${name}: describe's phase is get's`);
      assert.equal(d.status.pid, g.pid);
      assert.equal(d.desired?.state, state, `${name}: declared, desired ${state}`);
      const text = await describeText(name);
      assert.equal(line(text, 'Phase'), phase);
      assert.doesNotMatch(text, /not declared by any valid manifest/);
      assert.equal(line(text, 'State'), state);
    }
    assert.deepEqual((await describeJson('web')).desired?.command, ['/bin/sh', '-c', 'exec sleep 100001']);
    assert.equal((await describeJson('web')).desired?.resources.memory, '64Mi');
  });

  it("after a run that stopped: apply's replace is shown (new pid, new desired command), not the run's last record", async () => {
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { script: 'exec sleep 100002' }));
    run = new CliProcess(['run', '-f', dir, ...quickRunFlags()], { stateDir });
    const first = await waitFor(
      async () => {
        const d = await describeJson('web').catch(() => undefined);
        return d?.status.phase === 'Running' && d.desired ? d : undefined;
      },
      { what: 'the loop recorded web running', timeoutMs: 30_000 },
    );
    await run.stop();
    run = undefined;
    await writeFile(path.join(dir, 'web.yaml'), manifest('web', { script: 'exec sleep 100003', memory: '32Mi' }));
    const r = await cli(['apply', '-f', dir]);
    assert.equal(r.code, 0, r.stderr);
    const g = await get('web');
    assert.notEqual(g.pid, first.status.pid, 'replaced: another process');
    const d = await describeJson('web');
    assert.equal(d.status.phase, 'Running');
    assert.equal(d.status.pid, g.pid);
    assert.deepEqual(d.desired?.command, ['/bin/sh', '-c', 'exec sleep 100003']);
    assert.equal(d.desired?.resources.memory, '32Mi');
    const text = await describeText('web');
    assert.equal(line(text, 'PID'), String(g.pid));
    assert.match(text, /not running \(last stopped/);
  });
});
