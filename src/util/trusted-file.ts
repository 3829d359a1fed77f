/**
 * Reading a file of acetate's that decides what others get, only if nobody else could have written
 * it: the node's id records (runtime/walls/id-records.ts: a planted record could cover the whole
 * pool) and the node facts the host template hides by (runtime/walls/node-facts.ts: a planted
 * answer could show a tenant the node's keys). Read through one fd opened with O_NOFOLLOW (the
 * file itself, not where a symlink planted in its place leads); its dir and the file must be owned
 * by root (or by this process's user) and writable by their owner only, the file a plain file of
 * at most maxBytes. The caller gives its own error type and words.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

export interface TrustedReadOptions {
  /** What the file is, in messages: "the node's id records file". */
  what: string;
  maxBytes: number;
  /** The caller's error for a refusal or a failed read (the message names the file and why). */
  error: (message: string, cause?: unknown) => Error;
}

const euid = () => process.geteuid?.() ?? 0;

/** Why a file or dir with these stats cannot be trusted, or undefined. */
export function untrustedWhy(what: string, st: Stats): string | undefined {
  const me = euid();
  if (st.uid !== 0 && st.uid !== me) return `${what} is owned by uid ${st.uid}, not root${me === 0 ? '' : ` or uid ${me}`}`;
  if (st.mode & 0o022) return `${what} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * Throws o.error(...) when the file's dir exists and is not root's (or this user's) and writable
 * by its owner only: a file acetate is about to make there could be replaced (or its lock file
 * planted) by anyone who may write in it. A missing dir is fine (the writer makes it, 0700).
 */
export function refuseUntrustedDirSync(file: string, o: Pick<TrustedReadOptions, 'what' | 'error'>): void {
  const dir = path.dirname(file);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch {
    return;
  }
  const why = untrustedWhy(`its dir ${dir}`, st);
  if (why) throw refusal(file, o, why);
}

function refusal(file: string, o: Pick<TrustedReadOptions, 'what' | 'error'>, why: string): Error {
  return o.error(`${file}: ${o.what} is refused: ${why} (it must be root's and writable by root only)`);
}

/** The file's text; undefined when it does not exist. Throws o.error(...) naming the file and why on anything untrusted. */
export function readTrustedFileSync(file: string, o: TrustedReadOptions): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // None yet, so the writer will make it here: only in a dir nobody else may write in.
      refuseUntrustedDirSync(file, o);
      return undefined;
    }
    if (code === 'ELOOP') throw o.error(`${file}: ${o.what} is a symlink: refused (make it a plain file owned by root)`, err);
    throw o.error(`${file}: cannot read ${o.what} (${code ?? (err as Error).message})`, err);
  }
  try {
    refuseUntrustedDirSync(file, o);
    const st = fstatSync(fd);
    const why = st.isFile() ? untrustedWhy('it', st) : 'it is not a plain file';
    if (why) throw refusal(file, o, why);
    if (st.size > o.maxBytes) throw o.error(`${file}: ${st.size} bytes, more than ${o.maxBytes}: refused`);
    // Read up to the bound plus one on the fd: a file growing after fstat is still bounded.
    const buf = Buffer.alloc(Math.min(st.size, o.maxBytes) + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, n)) > 0;) n += r;
    if (n > o.maxBytes) throw o.error(`${file}: more than ${o.maxBytes} bytes: refused`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
