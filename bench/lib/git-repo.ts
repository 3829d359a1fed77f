/**
 * A real Git repository for tests and benchmarks: a bare repository (the "server"), a working
 * clone that commits and pushes, `git daemon` on 127.0.0.1 (a free port) and a gpg key for signed
 * commits. Everything lives under one directory the caller removes; stop() ends the daemon and the
 * gpg agent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';

const ENV = {
  GIT_AUTHOR_NAME: 'acetate test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'acetate test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class TestRepo {
  readonly bare: string;
  readonly work: string;
  /** GNUPGHOME holding the signing key, once makeSigningKey() ran. */
  gnupg?: string;
  private daemon?: ChildProcess;
  daemonPort?: number;

  constructor(readonly root: string) {
    this.bare = path.join(root, 'srv.git');
    this.work = path.join(root, 'work');
  }

  get fileUrl(): string {
    return `file://${this.bare}`;
  }

  get daemonUrl(): string {
    return `git://127.0.0.1:${this.daemonPort}/srv.git`;
  }

  async git(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const r = await exec('git', ['-C', this.work, ...args], {
      env: { ...process.env, ...ENV, ...(this.gnupg ? { GNUPGHOME: this.gnupg } : {}), ...env },
      timeoutMs: 60_000,
    });
    return r.stdout.trim();
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', this.bare]);
    await exec('git', ['init', '--quiet', '--initial-branch=main', this.work]);
    await this.git(['remote', 'add', 'origin', this.bare]);
  }

  /**
   * Writes (string), deletes (null) or links ({ link }) files, commits on the current branch and
   * pushes it (force: true replaces the remote branch, as a force-push). Returns the commit.
   */
  async commit(
    files: Record<string, string | null | { link: string }>,
    o: { message?: string; sign?: boolean; force?: boolean; branch?: string } = {},
  ): Promise<string> {
    for (const [name, content] of Object.entries(files)) {
      const p = path.join(this.work, name);
      await rm(p, { force: true, recursive: true });
      if (content === null) continue;
      await mkdir(path.dirname(p), { recursive: true });
      if (typeof content === 'string') await writeFile(p, content);
      else await symlink(content.link, p);
    }
    await this.git(['add', '-A']);
    await this.git(['commit', '--quiet', '--allow-empty', '-m', o.message ?? 'change', ...(o.sign ? ['-S'] : ['--no-gpg-sign'])]);
    const commit = await this.git(['rev-parse', 'HEAD']);
    await this.git(['push', '--quiet', ...(o.force ? ['--force'] : []), 'origin', `HEAD:refs/heads/${o.branch ?? 'main'}`]);
    return commit;
  }

  /** Moves the working branch back to commit (for a force-push that rewrites history). */
  async resetTo(commit: string): Promise<void> {
    await this.git(['reset', '--quiet', '--hard', commit]);
  }

  async deleteBranch(branch: string): Promise<void> {
    await this.git(['push', '--quiet', 'origin', `:refs/heads/${branch}`]);
  }

  /** `git daemon` serving root on 127.0.0.1 (the same port again after a stop, when given). */
  async startDaemon(port?: number): Promise<void> {
    this.daemonPort = port ?? (await freePort());
    const child = spawn(
      'git',
      ['daemon', '--reuseaddr', '--export-all', `--base-path=${this.root}`, '--listen=127.0.0.1', `--port=${this.daemonPort}`, this.root],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.daemon = child;
    // Ready once it accepts connections.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(this.daemonPort!, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`git daemon did not start on port ${this.daemonPort}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stopDaemon(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    if (!d || d.exitCode !== null) return;
    const exited = new Promise((r) => d.once('exit', r));
    d.kill('SIGTERM');
    await exited;
  }

  /** An ed25519 signing key in a GNUPGHOME of the repo's own; commits with sign: true are signed by it. Returns the armored public key. */
  async makeSigningKey(name = 'acetate signer'): Promise<string> {
    this.gnupg = path.join(this.root, 'gnupg');
    await mkdir(this.gnupg, { recursive: true, mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: this.gnupg };
    await exec('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', `${name} <signer@example.invalid>`, 'ed25519', 'sign', 'never'], {
      env,
      timeoutMs: 60_000,
    });
    const fpr = (await exec('gpg', ['--batch', '--with-colons', '--list-secret-keys'], { env })).stdout
      .split('\n')
      .find((l) => l.startsWith('fpr:'))!
      .split(':')[9]!;
    await this.git(['config', 'user.signingkey', fpr]);
    await this.git(['config', 'gpg.program', 'gpg']);
    return (await exec('gpg', ['--batch', '--armor', '--export', fpr], { env })).stdout;
  }

  /** Stops the daemon and the gpg agent (the caller removes root). */
  async stop(): Promise<void> {
    await this.stopDaemon();
    if (this.gnupg) await exec('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: this.gnupg } }).catch(() => undefined);
  }
}
