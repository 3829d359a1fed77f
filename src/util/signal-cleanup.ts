/**
 * A synchronous cleanup for a moment when the process must not die without it: a file that says
 * "this process waits" (the images lock's want file) would otherwise outlive a Ctrl-C.
 */

const FATAL: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs fn; should SIGINT, SIGTERM or SIGHUP come meanwhile, cleanup runs first. When nothing else
 * listens for that signal (so it would have ended the process), the signal is sent again with our
 * listeners gone, and the process ends as it would have without them (exit 130 for SIGINT). When
 * another part listens (`acetate run`'s shutdown), that part decides, and fn goes on.
 */
export async function withSignalCleanup<T>(cleanup: () => void, fn: () => Promise<T>): Promise<T> {
  const off = (): void => {
    for (const s of FATAL) process.off(s, onSignal);
  };
  function onSignal(sig: NodeJS.Signals): void {
    cleanup();
    if (process.listenerCount(sig) > 1) return;
    off();
    process.kill(process.pid, sig);
  }
  for (const s of FATAL) process.on(s, onSignal);
  try {
    return await fn();
  } finally {
    off();
  }
}
