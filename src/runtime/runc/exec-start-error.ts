/**
 * When `runc exec` cannot start the command (not found, not executable), it exits 255 and prints
 * its own logrus line (`time="..." level=error msg="exec failed: unable to start container
 * process: exec: \"x\": executable file not found in $PATH"`) on the stderr it shares with the
 * command. Podman and Docker return 127 (not found) and 126 (found, cannot be run) with one
 * clear line, which scripts test for; so does acetate.
 *
 * How runc's line is told from the command's output: runc writes it in one write (one pipe
 * chunk, below PIPE_BUF) and only when the command never started, so nothing of the command came
 * before it. The relay passes every chunk through as it comes, except one that is runc's error
 * line: that is held until runc exits, then replaced by acetate's message (exit 255 with it, and
 * no pid file: runc writes that once the command started) or else written out as it was.
 *
 * A file that is found and executable but that the kernel cannot run (a script whose `#!`
 * interpreter is missing, a binary of another format) fails later, in runc's init after the pid
 * file was written: it prints Go's plain `exec /path: no such file or directory` (or `exec format
 * error`) as its only output and exits 1. That line is recognised only as the first chunk, naming
 * the very command asked for, with exit 1, and becomes 127 (a missing interpreter: bash and Docker
 * say 127 for ENOENT) or 126 (cannot be executed), as a shell does.
 */
import type { Readable, Writable } from 'node:stream';

/** runc's text-format error line of a failed start (not its warnings, which pass through). */
const RUNC_EXEC_ERROR = /^time="[^"\n]*" level=error msg="exec failed: ((?:[^"\\\n]|\\.)*)"\s*$/;

/** runc init's execve failure of the command itself (Go's *PathError text, no logrus framing). */
const INIT_EXEC_ERROR = /^exec (.+): (no such file or directory|exec format error|permission denied)\n?$/;

export interface StartFailure {
  /** 127: not found; 126: found but cannot be run (permission, a directory); 255: anything else runc refused. */
  exitCode: number;
  /** One line: what could not be run and why. */
  message: string;
}

/** C0/C1 controls and DEL as \xNN, so the line cannot drive a terminal (the path may be the container's). */
function escapeControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Go's %q escapes in logrus' msg="..." undone (\" \\ \n \t); others are left as written. */
function unquoteGo(s: string): string {
  return s.replace(/\\(["\\nt])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c));
}

/** What runc's error line says, as an exit code and a message; undefined when `text` is not one. */
export function startFailure(text: string, key: string): StartFailure | undefined {
  const m = RUNC_EXEC_ERROR.exec(text);
  if (!m) return undefined;
  // "unable to start container process: exec: \"x\": executable file not found in $PATH"
  const detail = unquoteGo(m[1]!).replace(/^unable to start container process: /, '');
  const what = escapeControls(detail.replace(/^exec: /, ''));
  if (/executable file not found|no such file or directory/i.test(detail)) return { exitCode: 127, message: `exec in ${key}: ${what}` };
  if (/permission denied|is a directory/i.test(detail)) return { exitCode: 126, message: `exec in ${key}: ${what} (not executable)` };
  return { exitCode: 255, message: `exec in ${key}: ${escapeControls(detail)}` };
}

/** What runc init's execve line says of `command`, or undefined when `text` is not that line. */
export function initExecFailure(text: string, command: string, key: string): StartFailure | undefined {
  const m = INIT_EXEC_ERROR.exec(text);
  if (!m || !(m[1] === command || m[1]!.endsWith(`/${command}`))) return undefined;
  const what = `"${escapeControls(m[1]!)}"`;
  if (m[2] === 'no such file or directory')
    return { exitCode: 127, message: `exec in ${key}: ${what}: no such file or directory (is its #! interpreter missing from the container?)` };
  return { exitCode: 126, message: `exec in ${key}: ${what}: ${m[2]} (cannot be run)` };
}

export interface StderrRelay {
  /**
   * After runc exited with `code`: the start failure its line told, else undefined (held text
   * written out). `started`: runc wrote its pid file, so the command ran and the line was its own.
   */
  finish(code: number, started: boolean): StartFailure | undefined;
}

/**
 * Relays runc's stderr (the command's too) to `out`, holding back runc's own start error line, and
 * runc init's execve line of `command` when it is the first thing written.
 */
export function relayExecStderr(from: Readable, out: Writable, key: string, command = ''): StderrRelay {
  let held: Buffer | undefined;
  let heldFromInit = false;
  let first = true;
  from.on('data', (d: Buffer) => {
    const text = held === undefined ? d.toString('utf8') : '';
    if (held === undefined && RUNC_EXEC_ERROR.test(text)) held = d;
    else if (first && command && INIT_EXEC_ERROR.test(text)) [held, heldFromInit] = [d, true];
    else if (held !== undefined && heldFromInit) {
      // More came after it: the line was the command's own output.
      out.write(held);
      out.write(d);
      held = undefined;
      heldFromInit = false;
    } else out.write(d);
    first = false;
  });
  return {
    finish(code, started) {
      let failure: StartFailure | undefined;
      if (held && heldFromInit) failure = code === 1 && started ? initExecFailure(held.toString('utf8'), command, key) : undefined;
      else if (held) failure = code === 255 && !started ? startFailure(held.toString('utf8'), key) : undefined;
      if (held && !failure) out.write(held);
      return failure;
    },
  };
}
