/**
 * Runs bad inputs through the real CLI next to a running keeper container and checks: a clear
 * error naming the file, no crash, no hang, nothing created, the keeper untouched.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cgroupValue } from '../support/proc.js';
import { makeTmpStateDir } from '../support/tmp-state.js';
import { assertNoLeaks, cleanupStateDir } from '../support/leaks.js';
import { KEEPER, keeperManifest, type BadInput } from './corpus.js';
import { assertNoCrash, getAll, runCli, type CliResult } from './lib.js';

export interface Keeper {
  stateDir: string;
  dir: string;
  pid: number;
  memoryLimit: string;
}

export async function startKeeper(): Promise<Keeper> {
  const stateDir = await makeTmpStateDir('acetate-corpus-');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acetate-corpus-m-'));
  await writeFile(path.join(dir, 'keeper.yaml'), keeperManifest());
  const r = await runCli(['apply', '-f', dir], { stateDir });
  assert.equal(r.code, 0, `keeper apply failed: ${r.stderr}${r.stdout}`);
  const k = (await getAll(stateDir)).find((c) => c.name === KEEPER);
  assert.ok(k?.pid, 'keeper runs');
  return { stateDir, dir, pid: k.pid, memoryLimit: await cgroupValue(k.pid, 'memory', 'memory.limit_in_bytes') };
}

export async function stopKeeper(k: Keeper | undefined): Promise<void> {
  if (!k) return;
  try {
    await rm(k.dir, { recursive: true, force: true });
    await mkdir(k.dir);
    const r = await runCli(['apply', '-f', k.dir, '--allow-empty'], { stateDir: k.stateDir });
    assert.equal(r.code, 0, r.stderr);
    await assertNoLeaks(k.stateDir);
  } finally {
    await cleanupStateDir(k.stateDir).catch(() => undefined);
    await rm(k.dir, { recursive: true, force: true });
  }
}

/** Everything in the manifest dir except keeper.yaml. */
export async function clearCases(dir: string): Promise<void> {
  for (const e of await readdir(dir)) if (e !== 'keeper.yaml') await rm(path.join(dir, e), { recursive: true, force: true });
}

/** The keeper still runs, same pid, same limit, and nothing else was created. */
export async function assertKeeperUntouched(k: Keeper, what: string): Promise<void> {
  const all = await getAll(k.stateDir);
  assert.deepEqual(
    all.map((c) => c.name),
    [KEEPER],
    `${what}: containers now ${all.map((c) => c.name).join(', ')}`,
  );
  assert.equal(all[0]!.pid, k.pid, `${what}: keeper was restarted or replaced`);
  assert.equal(all[0]!.phase, 'Running', `${what}: keeper is ${all[0]!.phase}`);
  assert.equal(await cgroupValue(k.pid, 'memory', 'memory.limit_in_bytes'), k.memoryLimit, `${what}: keeper's memory limit changed`);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The `error: PATH[:LINE]: ...` line for the case's file must be printed and match. */
export function assertReported(r: CliResult, file: string, c: BadInput, what: string): void {
  const lines = r.stderr.split('\n').filter((l) => l.startsWith(`error: ${file}:`) || l.startsWith(`error: ${file} `) || l === `error: ${file}`);
  assert.ok(lines.length > 0, `${what}: no error line names ${file}\nstderr:\n${r.stderr.slice(0, 3000)}`);
  if (c.message)
    assert.ok(
      lines.some((l) => c.message!.test(l)),
      `${what}: no line for ${file} matches ${c.message}\n${lines.slice(0, 5).join('\n')}`,
    );
  assert.ok(new RegExp(`^error: ${escapeRe(file)}`, 'm').test(r.stderr));
}

/** Secrets of /etc/shadow (password hashes) must never be echoed in an error. */
export async function shadowSecrets(): Promise<string[]> {
  const text = await readFile('/etc/shadow', 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => l.split(':')[1] ?? '')
    .filter((h) => h.length > 3);
}

export interface CaseOutcome {
  id: string;
  validateMs: number;
  applyMs: number;
}

/** validate and apply one case in isolation. */
export async function checkCase(k: Keeper, c: BadInput, opts: { apply: boolean } = { apply: true }): Promise<CaseOutcome> {
  await clearCases(k.dir);
  const file = await c.write(k.dir);
  const out: CaseOutcome = { id: c.id, validateMs: 0, applyMs: 0 };
  let t0 = performance.now();
  const v = await runCli(['validate', k.dir], { stateDir: k.stateDir, timeoutMs: 60_000 });
  out.validateMs = Math.round(performance.now() - t0);
  assertNoCrash(v, `${c.id}: validate`);
  if (c.expect === 'error') {
    assert.equal(v.code, 1, `${c.id}: validate should fail\n${v.stdout}${v.stderr}`);
    assertReported(v, file, c, `${c.id}: validate`);
  } else {
    assert.equal(v.code, 0, `${c.id}: validate should ignore it\n${v.stderr}`);
  }
  for (const secret of await shadowSecrets()) assert.ok(!v.stderr.includes(secret), `${c.id}: /etc/shadow content echoed`);
  if (!opts.apply) return out;
  t0 = performance.now();
  const a = await runCli(['apply', '-f', k.dir], { stateDir: k.stateDir, timeoutMs: 120_000 });
  out.applyMs = Math.round(performance.now() - t0);
  assertNoCrash(a, `${c.id}: apply`);
  if (c.expect === 'error') {
    assert.equal(a.code, 1, `${c.id}: apply should exit 1\n${a.stdout}${a.stderr}`);
    assertReported(a, file, c, `${c.id}: apply`);
  } else {
    assert.equal(a.code, 0, `${c.id}: apply should ignore it\n${a.stderr}`);
    assert.match(a.stdout, /No changes/);
  }
  assert.doesNotMatch(a.stdout, /destroy|replace|restart|resize/, `${c.id}: apply touched something:\n${a.stdout}`);
  await assertKeeperUntouched(k, c.id);
  return out;
}

/** All cases at once (each in its own subdir): one validate and one apply. For the fast CI variant. */
export async function checkAllAtOnce(k: Keeper, cases: BadInput[]): Promise<void> {
  await clearCases(k.dir);
  const files = new Map<string, string>();
  for (const c of cases) {
    const sub = path.join(k.dir, `case-${c.id}`);
    await mkdir(sub, { recursive: true });
    files.set(c.id, await c.write(sub));
  }
  for (const cmd of [
    ['validate', k.dir],
    ['apply', '-f', k.dir],
  ]) {
    const r = await runCli(cmd, { stateDir: k.stateDir, timeoutMs: 120_000 });
    assertNoCrash(r, cmd[0]!);
    assert.equal(r.code, 1, `${cmd[0]} should exit 1`);
    for (const c of cases) if (c.expect === 'error') assertReported(r, files.get(c.id)!, c, `${c.id}: ${cmd[0]}`);
    for (const secret of await shadowSecrets()) assert.ok(!r.stderr.includes(secret), '/etc/shadow content echoed');
    if (cmd[0] === 'apply') assert.doesNotMatch(r.stdout, /destroy|replace|restart|resize/, `apply touched something:\n${r.stdout}`);
  }
  await assertKeeperUntouched(k, 'all bad inputs at once');
  await clearCases(k.dir);
}
