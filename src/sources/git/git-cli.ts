/**
 * The Git driver: the `git` command of the distribution (Debian's git), run without a shell.
 *
 * Why the CLI and not an npm implementation (isomorphic-git...): it uses what the user already set
 * up for Git on this node (ssh keys and ~/.ssh/config, credential helpers, http proxies, CA
 * bundles, insteadOf rewrites), speaks every protocol and does shallow fetches well, and it is
 * maintained and security-patched by the distribution. Signatures are checked by gpg from Debian.
 *
 * Hardening: prompts off (GIT_TERMINAL_PROMPT=0: a missing credential fails instead of hanging),
 * no hooks run in the cache repository, every command bounded in time, and messages (which carry
 * Git's stderr) have credentials in URLs masked, control characters escaped and a bounded length.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec, ExecError } from '../../util/exec.js';
import { excerpt } from '../files/excerpt.js';
import { GitSourceError, type GitDriver, type SignatureCheck } from './driver.js';

const FETCH_TIMEOUT_MS = 5 * 60_000;
const LOCAL_TIMEOUT_MS = 2 * 60_000;
const MAX_MESSAGE_CHARS = 400;

/** user:password@ in URLs (Git may echo the URL) becomes ***@. */
export function maskCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
}

function gitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...extra };
}

/** Options every command gets: no hooks, no fsmonitor, symlinks checked out as symlinks (refused later when they leave the tree). */
const SAFE = ['-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false', '-c', 'core.symlinks=true', '-c', 'advice.detachedHead=false'];

async function git(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  try {
    const r = await exec('git', [...SAFE, ...args], { env: gitEnv(opts.env), timeoutMs: opts.timeoutMs ?? LOCAL_TIMEOUT_MS });
    return r.stdout;
  } catch (err) {
    const detail = err instanceof ExecError ? (err.stderr.trim() || err.message).split('\n').slice(-3).join('; ') : (err as Error).message;
    throw new GitSourceError(excerpt(maskCredentials(`git ${args.find((a) => !a.startsWith('-')) ?? ''}: ${detail}`), MAX_MESSAGE_CHARS), { cause: err });
  }
}

export class GitCli implements GitDriver {
  async init(repo: string): Promise<void> {
    if (
      await stat(path.join(repo, 'HEAD')).then(
        () => true,
        () => false,
      )
    )
      return;
    await mkdir(path.dirname(repo), { recursive: true, mode: 0o700 });
    await git(['init', '--quiet', '--bare', repo]);
  }

  async lsRemote(url: string): Promise<Map<string, string>> {
    const out = await git(['ls-remote', '--', url], { timeoutMs: FETCH_TIMEOUT_MS });
    const refs = new Map<string, string>();
    const peeled = new Map<string, string>();
    for (const line of out.split('\n')) {
      const m = /^([0-9a-f]{40,64})\t(.+)$/.exec(line);
      if (!m) continue;
      if (m[2]!.endsWith('^{}')) peeled.set(m[2]!.slice(0, -3), m[1]!);
      else refs.set(m[2]!, m[1]!);
    }
    for (const [name, commit] of peeled) refs.set(name, commit);
    return refs;
  }

  async fetch(repo: string, url: string, what: string): Promise<string> {
    // Into a ref of our own: FETCH_HEAD is shared by concurrent fetches; --no-tags keeps it to one commit.
    const local = 'refs/acetate/fetched';
    const refspec = `+${what}:${local}`; // what: a full ref name (refs/heads/main) or a commit hash
    await git(['--git-dir', repo, 'fetch', '--quiet', '--depth', '1', '--no-tags', '--no-write-fetch-head', '--', url, refspec], {
      timeoutMs: FETCH_TIMEOUT_MS,
    });
    const commit = (await git(['--git-dir', repo, 'rev-parse', '--verify', `${local}^{commit}`])).trim();
    return commit;
  }

  async checkout(repo: string, commit: string, dest: string, subpath: string): Promise<void> {
    await mkdir(dest, { recursive: true });
    // A private index: the bare cache has none, and two checkouts never share one.
    const index = `${dest}.index`;
    try {
      await git(['--git-dir', repo, '--work-tree', dest, 'checkout', '--quiet', '--force', commit, '--', subpath === '' ? '.' : subpath], {
        env: { GIT_INDEX_FILE: index },
      });
    } finally {
      await rm(index, { force: true });
    }
  }

  async verify(repo: string, commit: string, keyring: string): Promise<SignatureCheck> {
    // A GNUPGHOME of its own holding only the allowed keys: the node's keyrings play no part.
    const home = await mkdtemp(path.join(path.dirname(repo), 'gnupg-'));
    try {
      await exec('gpg', ['--batch', '--quiet', '--no-autostart', '--import', keyring], {
        env: { ...process.env, GNUPGHOME: home },
        timeoutMs: LOCAL_TIMEOUT_MS,
      }).catch((err: unknown) => {
        throw new GitSourceError(`cannot import --verify-signatures ${keyring}: ${excerpt((err as Error).message, MAX_MESSAGE_CHARS)}`, { cause: err });
      });
      const out = await git(['--git-dir', repo, '-c', 'gpg.program=gpg', 'log', '-1', '--format=%G?%x00%GK%x00%GF', commit], {
        env: { GNUPGHOME: home },
      });
      const [code = 'N', key = '', fpr = ''] = out.trim().split('\0');
      const who = fpr || key || 'an unknown key';
      // G: good and trusted; U: good, validity unknown (the keyring's keys are not certified): both are a key of the keyring.
      if (code === 'G' || code === 'U') return { ok: true, detail: `good signature by ${who}` };
      const why: Record<string, string> = {
        N: 'not signed',
        B: `bad signature (by ${who})`,
        E: `signed by ${who}, which is not in the keyring`,
        X: `good signature by ${who}, but the signature has expired`,
        Y: `good signature by ${who}, but the key has expired`,
        R: `signed by ${who}, whose key is revoked`,
      };
      return { ok: false, detail: why[code] ?? `signature status ${excerpt(code, 8)}` };
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }
}
