/**
 * The loop's view socket answering `get`'s plain table (controller/view-socket.ts, `for=table`),
 * as `acetate get` reads it (cli/loop-view.ts): a real Unix socket, a view given by the test.
 * What the user checks: the rows are the ones `get --direct` makes of the same containers and
 * records (container-rows.ts), an edit to the view shows at the next ask, and a view that is not
 * whole is not answered (get then reads the node).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { serveView, type ViewServer, type ViewSource } from '../../src/controller/view-socket.js';
import { askLoop, askLoopToPlan } from '../../src/cli/loop-view.js';
import http from 'node:http';
import type { Planner } from '../../src/controller/view-plan.js';
import type { PlanAsk } from '../../src/controller/view-protocol.js';
import { buildStamp } from '../../src/util/build-stamp.js';
import { containerRow, waitingRow } from '../../src/controller/container-rows.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';
import type { ActualContainer } from '../../src/runtime/runtime.js';
import { actualFrom, desired } from '../support/model.js';

function record(key: string, over: Partial<StatusRecord> = {}): StatusRecord {
  const [namespace, name] = key.split('/') as [string, string];
  return { key, namespace, name, status: { phase: 'Running' }, problems: [], recentActions: [], updatedAt: '2026-01-01T00:00:00Z', ...over };
}

const notReady = (message: string): StatusRecord['status'] => ({
  phase: 'Running',
  conditions: [{ type: 'Ready', status: 'False', reason: 'Unhealthy', message, lastTransitionTime: '2026-01-01T00:00:00Z' }],
});

describe("view socket: get's table rows from the loop", () => {
  let dir: string;
  let server: ViewServer | undefined;
  let containers: ActualContainer[] | undefined;
  let records: StatusRecord[];
  let generation = 0;
  let made = 0;
  const source: ViewSource = {
    containers: () => {
      made++;
      return containers;
    },
    records: () => records,
    generation: () => String(generation),
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'acetate-view-'));
    const web = actualFrom(desired('web'));
    const db = { ...actualFrom(desired('db'), { state: 'exited', exitCode: 3 }), namespace: 'shop', key: 'shop/db', restartCount: 2 };
    containers = [db, web];
    records = [
      record('default/web', { incarnation: web.applied.createdAt, status: notReady('probe said 500') }),
      // Of an earlier container of the same name: not this one's status.
      record('shop/db', { incarnation: '2025-01-01T00:00:00Z', status: notReady('an old one') }),
      record('default/queued', {
        desired: { state: 'Running', template: 'host', command: [], restartPolicy: 'Always', resources: { cpu: '1' } },
        waiting: { reason: 'ErrImagePull', message: 'x'.repeat(80) },
      }),
    ];
    generation = 1;
    made = 0;
    server = await serveView(dir, '/var/lib/acetate-test-state', source);
  });
  afterEach(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the rows get --direct makes of the same containers and records', async () => {
    const view = await askLoop(dir, '/var/lib/acetate-test-state', 'table');
    assert.ok(view, 'answered');
    const [db, web] = containers!;
    assert.deepEqual(view.containers, [containerRow(db!, undefined), containerRow(web!, records[0])]);
    assert.deepEqual(view.records, [waitingRow(records[2] as Parameters<typeof waitingRow>[0])]);
    const cells = (r: { cells: string[] }) => [0, 1, 2, 5, 6].map((i) => r.cells[i]); // NAME STATE PID RESTARTS STATUS
    assert.deepEqual(cells(view.containers[1]!), ['web', 'Running', '100', '0', 'Unhealthy: probe said 500']);
    assert.deepEqual(cells(view.containers[0]!), ['shop/db', 'Failed(3)', '-', '2', '-'], "an earlier container's record is not shown");
    assert.match(view.records[0]!.cells[6]!, /^ErrImagePull: x{57}\.\.\.$/);
  });

  it('a loop that accepts the connection and never answers (stopped) is passed by within the time limit', async function () {
    this.timeout(20_000);
    await server?.close();
    server = undefined;
    // A socket whose owner never reads: the kernel accepts the connection for it, as for a SIGSTOPped loop.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(path.join(dir, 'loop.sock'), resolve));
    try {
      const t0 = Date.now();
      assert.equal(await askLoop(dir, '/var/lib/acetate-test-state', 'table'), undefined);
      assert.ok(Date.now() - t0 < 10_000, `gave up after ${Date.now() - t0} ms`);
      // The plan's ask says the loop was silent: `plan` then reads the node without asking again.
      const ask: PlanAsk = { dir: '/etc/acetate/containers', seenAs: 'ns 1:2 3:4', allowEmpty: false, fingerprint: 'f' };
      assert.deepEqual(await askLoopToPlan(dir, '/var/lib/acetate-test-state', ask), { silent: true });
    } finally {
      silent.close();
    }
  });

  it('makes the rows once while the view is unchanged, again once it changes; a view not whole is not answered', async () => {
    await askLoop(dir, '/var/lib/acetate-test-state', 'table');
    // Past the second that objects are kept after their askers: rows are kept while current.
    await new Promise((r) => setTimeout(r, 1200));
    await askLoop(dir, '/var/lib/acetate-test-state', 'table');
    assert.equal(made, 1, 'the second ask is answered with the rows made for the first');
    containers = [containers![1]!];
    records = [{ ...records[0]!, status: notReady('probe said 503') }, ...records.slice(1)];
    generation++;
    const after = await askLoop(dir, '/var/lib/acetate-test-state', 'table');
    assert.deepEqual(
      after?.containers.map((r) => [r.key, r.cells[6]]),
      [['default/web', 'Unhealthy: probe said 503']],
      'the container gone is not listed; the one whose record changed shows the new status',
    );
    assert.equal(await askLoop(dir, '/var/lib/another-state', 'table'), undefined, 'not for another state dir');
    containers = undefined;
    generation++;
    assert.equal(await askLoop(dir, '/var/lib/acetate-test-state', 'table'), undefined, 'not while the view is not whole');
  });

  it("passes `plan -f DIR`'s ask to the loop's planner, and answers its plan or why not", async () => {
    const ask: PlanAsk = { dir: '/etc/acetate/containers', seenAs: 'ns 1:2 3:4', allowEmpty: false, fingerprint: 'f' };
    assert.deepEqual(await askLoopToPlan(dir, '/var/lib/acetate-test-state', ask), { silent: false }, 'a loop without a planner: the asker plans');
    await server?.close();
    const asked: PlanAsk[] = [];
    const planner: Planner = async (a) => {
      asked.push(a);
      if (a.dir !== ask.dir) return { declined: 'not my directory' };
      return { plan: { actions: [], unchanged: ['default/web'], skipped: [], held: [], requeue: [] }, warnings: [], problems: [] };
    };
    server = await serveView(dir, '/var/lib/acetate-test-state', source, planner);
    const { made } = await askLoopToPlan(dir, '/var/lib/acetate-test-state', ask);
    assert.deepEqual(made?.plan.unchanged, ['default/web']);
    assert.deepEqual(asked, [ask], 'the ask as sent');
    assert.deepEqual(await askLoopToPlan(dir, '/var/lib/acetate-test-state', { ...ask, dir: '/srv' }), { silent: false }, 'declined');
    assert.deepEqual(await askLoopToPlan(dir, '/var/lib/another-state', ask), { silent: false }, 'not for another state dir');
    // An ask that is not one is refused before any planning.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.request(
        { socketPath: path.join(dir, 'loop.sock'), path: '/v1/plan', method: 'POST', headers: { 'x-acetate-build': buildStamp() } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', reject);
      req.end('{"dir": 1}');
    });
    assert.equal(status, 400);
    assert.equal(asked.length, 3, 'the malformed one never reached the planner');
  });
});
