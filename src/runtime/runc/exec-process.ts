/**
 * The process a `runc exec` started, seen from the host through the pid file runc writes once it
 * started it. runc's setns init makes that process the leader of a new session and process group
 * (setsid), so the children it forks stay in its group unless they leave it (daemons do).
 *
 * Why this is needed: a non-detached `runc exec` copies the process's output through pipes of its
 * own and exits, with the process's code, only once those pipes are closed, i.e. once every child
 * the process left behind (`sh -c "sleep 600 & exit 0"`) closed them too. So the end of the
 * process itself is seen here (its pid gone), and what is left of its group is killed: then runc
 * reports the code. The kubelet leaves such children (containerd reports the exit at once); runc
 * can only report it once they are gone. A child that left the group (setsid) or closed its output
 * does not hold runc, and is left running.
 */
import { readFile } from 'node:fs/promises';

/**
 * How long a kill waits for `runc exec` to write the pid file while runc lives. Long: runc is
 * killed only after it (killed, runc would leave its process running, its parent gone), and on
 * a loaded node (load 27 on 2 cores, seen in tests) runc took over a second to write it.
 */
const PID_FILE_WAIT_MS = 10_000;

export async function readPidFile(pidFile: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
}

/** Start time (field 22 of /proc/PID/stat) and whether it is a zombie; undefined when gone. */
async function procState(pid: number): Promise<{ start: string; zombie: boolean } | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { start: rest[19] ?? '', zombie: rest[0] === 'Z' || rest[0] === 'X' };
}

/** SIGKILL to what is left of the group the (gone) process led: its number stays reserved while the group has members. */
function killGroupOnly(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left
  }
}

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/**
 * SIGKILL to the exec's process and its process group: waits (bounded) for the pid file while
 * runc lives; never once runc exited (the pid may be reused).
 */
export async function killExecProcess(pidFile: string, runcExited: () => boolean): Promise<void> {
  const until = Date.now() + PID_FILE_WAIT_MS;
  for (;;) {
    if (runcExited()) return;
    const pid = await readPidFile(pidFile);
    if (pid !== undefined) {
      if (!runcExited()) killGroup(pid);
      return;
    }
    if (Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Watches the exec's process while runc runs on: once it is gone, kills what is left of its
 * process group (the children holding runc's output pipes). Looks after firstMs, then at
 * doubling intervals up to maxMs (a check hanging for an hour costs a read of /proc a second).
 * Returns a function that stops watching.
 */
export function reapLeftChildren(pidFile: string, runcExited: () => boolean, o: { firstMs: number; maxMs: number }): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pid: number | undefined;
  let start: string | undefined;
  const look = async (delay: number): Promise<void> => {
    if (stopped || runcExited()) return;
    pid ??= await readPidFile(pidFile);
    if (pid !== undefined) {
      const st = await procState(pid);
      start ??= st?.start;
      if (!st || st.zombie || st.start !== start) {
        if (!stopped && !runcExited()) killGroupOnly(pid);
        return;
      }
    }
    const next = Math.min(delay * 2, o.maxMs);
    if (!stopped) timer = setTimeout(() => void look(next), next);
  };
  timer = setTimeout(() => void look(o.firstMs), o.firstMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
