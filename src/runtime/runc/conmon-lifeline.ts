/**
 * conmon's end as an event (issue 25), instead of a signal 0 to every running container's conmon
 * every poll period. conmon opens its `winsz` FIFO (in the bundle) for reading and holds a dummy
 * writer on it too, so that it never reads an end of file, until it ends: the kernel then closes
 * both. A reader of our own (non-blocking, never read from by anyone else: acetate allocates no
 * terminal, so nothing is ever written to winsz) gets the end of file once no writer is left, i.e.
 * once conmon is gone, killed or not. libuv polls the fd: nothing runs while conmon lives.
 *
 * Why a FIFO and not a pidfd: Node has no pidfd_open, and a native addon for one syscall is more to
 * build and keep than an open(2). Why winsz and not ctl: both are held the same way, but a reader
 * on ctl could take a message meant for conmon (log reopen); winsz is only written for terminals.
 *
 * One fd per running container in `acetate run`: a budget (a quarter of RLIMIT_NOFILE) keeps the
 * process's own fds for its real work; past it, or without a FIFO, the loop's sweep checks the pid.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface Lifeline {
  /** The conmon pid it was opened for. */
  readonly conmon: number;
  close(): void;
}

/** How many lifelines this process may hold at once. */
export class LifelineBudget {
  private used = 0;
  readonly limit: number;

  constructor(limit?: number) {
    this.limit = limit ?? Math.floor(openFilesLimit() / 4);
  }

  take(): boolean {
    if (this.used >= this.limit) return false;
    this.used++;
    return true;
  }

  give(): void {
    this.used = Math.max(0, this.used - 1);
  }
}

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start); 1024 if unreadable. */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Opens `fifo` for reading and calls `onGone` once when no writer is left (conmon ended), or when the
 * watch fails after opening. Undefined when no lifeline could be opened (no FIFO, not a FIFO, no
 * budget): the caller falls back to checking the pid.
 */
export function openLifeline(fifo: string, conmon: number, budget: LifelineBudget, onGone: () => void): Lifeline | undefined {
  if (!budget.take()) return undefined;
  let fd: number;
  try {
    // Non-blocking: opening a FIFO for reading never waits for a writer. No symlink followed;
    // libuv adds O_CLOEXEC (runc and conmon started later never inherit it).
    fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    budget.give();
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFIFO()) throw new Error('not a FIFO');
  } catch {
    closeSync(fd);
    budget.give();
    return undefined;
  }
  const socket = new net.Socket({ fd, readable: true, writable: false });
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    budget.give();
    socket.destroy();
  };
  const gone = (): void => {
    if (closed) return;
    close();
    onGone();
  };
  socket.on('end', gone);
  socket.on('error', gone);
  socket.on('close', gone);
  // Anything written (a terminal resize no acetate container asks for) is dropped, never kept.
  socket.on('data', () => undefined);
  // Never keeps the process alive on its own (as the exit dirs' watches).
  socket.unref();
  return { conmon, close };
}
