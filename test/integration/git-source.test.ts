/**
 * `acetate run --git` / `apply --git` against real Git, offline: a bare repository created here,
 * served over file:// and by `git daemon` on 127.0.0.1; commits add, edit and delete manifests;
 * force-push, deleted branch, unreachable server, a broken manifest, a committed symlink to a node
 * file, signed and unsigned commits. Containers are real (runc); limits are read from the cgroup.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { runCli } from '../support/cli.js';
import { CliProcess, quickRunFlags } from '../support/cli-process.js';
import { cgroupValue, isAlive } from '../support/proc.js';
import { makeCliRoot, destroyAllAndAssertNoLeaks, type CliRoot } from '../support/cli-root.js';
import { waitFor } from '../support/wait.js';
import { manifest } from '../support/manifest.js';
import { filesContaining, secretPieces } from '../support/leak-scan.js';
import { TestRepo } from '../../bench/lib/git-repo.js';
import type { StatusRecord } from '../../src/contracts/status-record.js';

const MI = 1024 * 1024;
const SECRET = 'root:$y$j9T$GITSECRET42xq$hashhashhash:20228:0:99999:7:::\n';

describe('the Git source (real git, git daemon, gpg, runc)', function () {
  this.timeout(180_000);
  let r: CliRoot;
  let repo: TestRepo;
  let acetate: CliProcess | undefined;

  const describeJson = async (name: string): Promise<(StatusRecord & { git?: { lastError?: { message: string }; signature?: string }[] }) | undefined> => {
    const d = await runCli(['describe', name, '-o', 'json'], { stateDir: r.stateDir });
    return d.code === 0 ? JSON.parse(d.stdout) : undefined;
  };
  const revisionOf = async (name: string): Promise<string | undefined> => {
    const rec = await describeJson(name);
    return rec?.source?.kind === 'file' ? rec.source.revision : undefined;
  };
  /** The pid once the container runs with memory (and, when given, is synced to commit). */
  const runningWith = (name: string, memory: string, commit?: string): Promise<number> =>
    waitFor(
      async () => {
        const rec = await describeJson(name);
        if (rec?.actual?.state !== 'running' || rec.actual.limits.memory !== memory) return undefined;
        if (commit && (rec.source?.kind !== 'file' || rec.source.revision !== commit)) return undefined;
        return rec.actual.pid;
      },
      {
        timeoutMs: 40_000,
        message: () => `${name} running with memory ${memory}${commit ? ` at ${commit.slice(0, 7)}` : ''} (log: ${acetate?.stdout.slice(-1500)})`,
      },
    );
  const memLimit = (pid: number) => cgroupValue(pid, 'memory', 'memory.limit_in_bytes');
  /** `get -o wide` rows: name → REVISION column. */
  const wideRevisions = async (): Promise<Map<string, string>> => {
    const g = await runCli(['get', '-o', 'wide'], { stateDir: r.stateDir });
    assert.equal(g.code, 0, g.stderr);
    const [head, ...rows] = g.stdout.trim().split('\n');
    const cols = head!.split(/\s{2,}/);
    const at = cols.indexOf('REVISION');
    assert.ok(at > 0, `a REVISION column: ${head}`);
    return new Map(rows.filter((l) => l.trim()).map((l) => [l.split(/\s{2,}/)[0]!, l.split(/\s{2,}/)[at]!]));
  };
  const sync = async (): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${acetate!.url}/sync`, { method: 'POST' });
    return { status: res.status, text: await res.text() };
  };
  const startRun = async (args: string[], interval = '1s'): Promise<CliProcess> => {
    const p = new CliProcess(['run', ...args, '--interval', interval, ...quickRunFlags(), '--log-format', 'json'], {
      stateDir: r.stateDir,
      env: { ACETATE_GIT_BACKOFF_BASE_MS: '200' },
    });
    await waitFor(() => p.url, { timeoutMs: 30_000, message: () => `the metrics address (stderr: ${p.stderr})` });
    return p;
  };

  before(async () => {
    r = await makeCliRoot('acetate-git-');
    repo = new TestRepo(path.join(r.root, 'repo'));
    await repo.init();
    await writeFile(path.join(r.root, 'secret'), SECRET, { mode: 0o600 });
  });

  after(async () => {
    await acetate?.stop();
    await repo?.stop();
    await destroyAllAndAssertNoLeaks({ ...r, apply: () => runCli(['apply', '-f', r.dir, '--allow-empty'], { stateDir: r.stateDir }) });
  });

  it("file://: converges after each commit (add, edit, delete) and records each container's commit", async () => {
    const c1 = await repo.commit({ 'deploy/web.yaml': manifest('web') });
    acetate = await startRun(['--git', repo.fileUrl, '--path', 'deploy']);
    const pid = await runningWith('web', '64Mi', c1);
    assert.equal((await wideRevisions()).get('web'), c1.slice(0, 7));
    const rec = (await describeJson('web'))!;
    assert.match(rec.status.conditions!.find((c) => c.type === 'Synced')!.message!, new RegExp(`commit ${c1.slice(0, 7)} is applied`));
    const text = (await runCli(['describe', 'web'], { stateDir: r.stateDir })).stdout;
    assert.match(text, new RegExp(`\\(commit ${c1}\\)`));
    assert.match(await (await fetch(`${acetate.url}/metrics`)).text(), new RegExp(`acetate_source_revision_info\\{source="git:[^"]+",revision="${c1}"\\} 1`));
    assert.ok(acetate.lines.some((l) => l.message.includes(`applied commit ${c1.slice(0, 7)}`) && JSON.stringify(l.changed) === '["default/web"]'));

    const c2 = await repo.commit({ 'deploy/web.yaml': manifest('web', { memory: '96Mi' }), 'deploy/db.yaml': manifest('db') });
    assert.equal(await runningWith('web', '96Mi', c2), pid, 'resized in place');
    assert.equal(await memLimit(pid), String(96 * MI));
    await runningWith('db', '64Mi', c2);
    assert.deepEqual(Object.fromEntries(await wideRevisions()), { db: c2.slice(0, 7), web: c2.slice(0, 7) });
    assert.ok(
      acetate.lines.some((l) => l.message.includes(`applied commit ${c2.slice(0, 7)}`) && JSON.stringify(l.changed) === '["default/db","default/web"]'),
    );

    const c3 = await repo.commit({ 'deploy/db.yaml': null });
    await waitFor(async () => (await runCli(['describe', 'db'], { stateDir: r.stateDir })).code !== 0, { timeoutMs: 30_000, message: 'db destroyed' });
    await waitFor(async () => (await revisionOf('web')) === c3, { timeoutMs: 30_000, message: 'web at the commit that deleted db' });
    assert.equal((await wideRevisions()).get('web'), c3.slice(0, 7));
  });

  it('a commit that breaks a manifest leaves its container untouched and reports it; the fix is applied', async () => {
    const pid = await runningWith('web', '96Mi');
    const bad = await repo.commit({ 'deploy/web.yaml': manifest('web', { memory: 'lots' }) });
    await waitFor(async () => (await describeJson('web'))?.status.conditions?.find((c) => c.type === 'Synced' && c.reason === 'InvalidManifest'), {
      timeoutMs: 30_000,
      message: 'Synced=False InvalidManifest',
    });
    assert.ok(acetate!.lines.some((l) => l.message.includes(`applied commit ${bad.slice(0, 7)}`)));
    assert.ok(isAlive(pid));
    assert.equal(await memLimit(pid), String(96 * MI));
    const fix = await repo.commit({ 'deploy/web.yaml': manifest('web', { memory: '80Mi' }) });
    assert.equal(await runningWith('web', '80Mi', fix), pid);
  });

  it('a force-pushed branch is followed to its new tip; nothing is destroyed on the way', async () => {
    const pid = await runningWith('web', '80Mi');
    const base = await repo.git(['rev-parse', 'HEAD~3']);
    await repo.resetTo(base);
    const tip = await repo.commit({ 'deploy/web.yaml': manifest('web', { memory: '72Mi' }) }, { force: true, message: 'rewritten' });
    assert.equal(await runningWith('web', '72Mi', tip), pid);
  });

  it('a committed symlink to a node file is refused: no byte of it in output, log, status or state dir', async () => {
    const pid = await runningWith('web', '72Mi');
    const c = await repo.commit({
      'deploy/x.yaml': { link: path.join(r.root, 'secret') },
      'deploy/s.yaml': { link: '/etc/shadow' },
      'deploy/up.yaml': { link: '../../../../../../../../secret' },
    });
    await waitFor(() => acetate!.logged(/x\.yaml: symlink resolves outside the manifest directory/), { timeoutMs: 30_000, message: 'the refusal logged' });
    await waitFor(async () => (await revisionOf('web')) === c, { timeoutMs: 30_000, message: 'web at the commit with the links' });
    assert.ok(isAlive(pid));
    const markers = secretPieces(SECRET);
    // Its lines with a password hash: a host-template container's locked copy keeps the others (no secret in them).
    markers.push(...secretPieces(await readFile('/etc/shadow', 'utf8').catch(() => '')).filter((m) => /^[^:]*:\$/.test(m)));
    const out =
      acetate!.stdout +
      acetate!.stderr +
      (await runCli(['describe', 'web'], { stateDir: r.stateDir })).stdout +
      (await runCli(['get', '-o', 'json'], { stateDir: r.stateDir })).stdout;
    for (const m of markers) assert.ok(!out.includes(m), 'a piece of a link target in the output');
    assert.deepEqual(await filesContaining(r.stateDir, markers), []);
    await repo.commit({ 'deploy/x.yaml': null, 'deploy/s.yaml': null, 'deploy/up.yaml': null });
  });

  it('git daemon: unreachable server and deleted branch keep the containers and report the error; recovery; POST /sync and SIGHUP fetch at once', async () => {
    await acetate!.stop();
    await repo.startDaemon();
    const port = repo.daemonPort!;
    const c1 = await repo.commit({ 'api/api.yaml': manifest('api') }, { branch: 'feature' });
    // A poll 10 minutes away: every fetch here is asked for.
    acetate = await startRun(['--git', repo.daemonUrl, '--ref', 'feature', '--path', 'api'], '10m');
    const pid = await runningWith('api', '64Mi', c1);
    assert.equal(await memLimit(pid), String(64 * MI));

    await repo.stopDaemon();
    const down = await sync();
    assert.equal(down.status, 502, down.text);
    assert.match(down.text, /keeping commit/);
    // The loop publishes its sources' state each second: describe shows the failure once it has.
    const rec = await waitFor('the failed sync in the loop record', async () => {
      const d = (await describeJson('api'))!;
      return d.git?.[0]?.lastError ? d : undefined;
    });
    assert.match(rec.git?.[0]?.lastError?.message ?? '', new RegExp(`keeping commit ${c1.slice(0, 7)}`));
    assert.match((await runCli(['describe', 'api'], { stateDir: r.stateDir })).stdout, /Sync failing: /);
    assert.ok(isAlive(pid));

    await repo.startDaemon(port);
    const c2 = await repo.commit({ 'api/api.yaml': manifest('api', { memory: '48Mi' }) }, { branch: 'feature' });
    const up = await sync();
    assert.equal(up.status, 200, up.text);
    assert.equal(await runningWith('api', '48Mi', c2), pid);

    await repo.deleteBranch('feature');
    const gone = await sync();
    assert.equal(gone.status, 502);
    assert.match(gone.text, /ref 'feature' is not on .*deleted branch/);
    assert.ok(isAlive(pid));
    assert.equal(await memLimit(pid), String(48 * MI));
    assert.equal(await revisionOf('api'), c2);

    const c3 = await repo.commit({ 'api/api.yaml': manifest('api', { memory: '56Mi' }) }, { branch: 'feature' });
    acetate.child.kill('SIGHUP');
    assert.equal(await runningWith('api', '56Mi', c3), pid);
    await waitFor(() => acetate!.logged(/syncs again/), { timeoutMs: 10_000, message: 'the recovery logged' });
  });

  it('--verify-signatures: unsigned or foreign-signed commits are refused, the last good one keeps running; apply --git too', async () => {
    await acetate!.stop();
    acetate = undefined;
    const pub = await repo.makeSigningKey();
    const keyring = path.join(r.root, 'allowed.asc');
    await writeFile(keyring, pub);
    const signed = await repo.commit({ 'signed/sig.yaml': manifest('sig') }, { sign: true, branch: 'signed' });
    const flags = ['--git', repo.fileUrl, '--ref', 'signed', '--path', 'signed', '--verify-signatures', keyring];
    const a = await runCli(['apply', ...flags], { stateDir: r.stateDir });
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, new RegExp(`commit ${signed.slice(0, 7)}`));

    acetate = await startRun(flags, '10m');
    const pid = await runningWith('sig', '64Mi', signed);
    const unsigned = await repo.commit({ 'signed/sig.yaml': manifest('sig', { memory: '40Mi' }) }, { branch: 'signed' });
    const refused = await sync();
    assert.equal(refused.status, 502);
    assert.match(refused.text, new RegExp(`commit ${unsigned} refused by --verify-signatures: not signed; keeping commit ${signed.slice(0, 7)}`));
    assert.ok(acetate.logged(/refused by --verify-signatures: not signed/));
    // Published by the loop each second.
    await waitFor('describe showing the refused commit', async () =>
      /Sync failing: .*not signed/.test((await runCli(['describe', 'sig'], { stateDir: r.stateDir })).stdout),
    );
    assert.equal(await memLimit(pid), String(64 * MI));

    // Signed by another key: refused too.
    const other = new TestRepo(path.join(r.root, 'other'));
    await other.init();
    await other.makeSigningKey('someone else');
    const mine = await repo.git(['config', 'user.signingkey']);
    const ownHome = repo.gnupg;
    repo.gnupg = other.gnupg;
    await repo.git(['config', 'user.signingkey', await other.git(['config', 'user.signingkey'])]);
    const foreign = await repo.commit({ 'signed/sig.yaml': manifest('sig', { memory: '44Mi' }) }, { sign: true, branch: 'signed' });
    const refused2 = await sync();
    assert.equal(refused2.status, 502);
    assert.match(refused2.text, new RegExp(`commit ${foreign} refused by --verify-signatures: signed by .*not in the keyring`));
    await other.stop();
    repo.gnupg = ownHome;
    await repo.git(['config', 'user.signingkey', mine]);

    const good = await repo.commit({ 'signed/sig.yaml': manifest('sig', { memory: '52Mi' }) }, { sign: true, branch: 'signed' });
    const ok = await sync();
    assert.equal(ok.status, 200, ok.text);
    assert.equal(await runningWith('sig', '52Mi', good), pid);
    assert.match(JSON.stringify((await describeJson('sig'))?.git), /good signature by/);
  });
});
