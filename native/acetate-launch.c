/*
 * acetate-launch: starts conmon (or any supervisor acetate names) from a process that already sits
 * in the conmons' cgroup, so that each conmon is born there instead of being moved there.
 *
 * Why: moving a process into a cgroup (a write to cgroup.procs) takes the kernel's
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period when no other move
 * happened just before (5-30 ms on the test node), and Node's spawn of each conmon blocked
 * acetate's one thread for a few ms. A fork inherits its parent's cgroups for free: acetate starts
 * one launcher per runtime, moves it once, and sends it requests. (Measured: a few % per start, not
 * the whole grace period: runc's own moves of the container then pay it, see docs/supervision.md.)
 * Nothing else here does this: systemd-run moves a process per call, and Node's child_process
 * cannot start a process in another cgroup (no clone3(CLONE_INTO_CGROUP), and none on cgroup v1).
 *
 * Protocol. stdin: requests, each a run of NUL-terminated fields
 *     ID OUT SYNC NARGS ARG0 ... ARGn NENV ENV0 ... ENVn
 *   ID    the caller's number for the request (1 to 20 digits)
 *   OUT   file for the program's stdout and stderr (created 0600, truncated)
 *   SYNC  file given to the program as fd 3 (created 0600 if missing, not truncated)
 *   ARG0  the program's absolute path, and argv[0]
 *   ENV   NAME=VALUE: the program's whole environment
 * At most 1 MiB and 4,096 fields per request. stdout: one line per request: `ID exit CODE` or
 * `ID signal N` when its process ends, or `ID error REASON` when it could not be started (fork,
 * OUT or SYNC, exec). The process runs in a new session with cwd `/`, stdin /dev/null, fds 1-3 as
 * above and no other, an empty signal mask and every signal at its default.
 * The end of stdin (or a malformed request) ends the launcher once every process it started has
 * ended and been answered for (what they started runs on: conmon daemonizes).
 *
 * The caller is acetate (root, the same trust): the requests are bounded, not sanitized.
 * Built with gcc by scripts/build-native.sh, like acetate-idmap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "requests.h"

#define MAX_PENDING 4096

struct pending {
  pid_t pid;
  int answered; /* an `error` answer was given: its exit is not answered again */
  char id[24];
};

static struct pending pending[MAX_PENDING];
static int npending;
static char buf[MAX_REQUEST];
static size_t used;

/*
 * Splits one complete request at the start of buf into fields: returns the bytes it takes, 0 if
 * it is not complete yet, -1 if it is malformed.
 */
static long take_request(char **f) {
  size_t off = 0;
  long need = 4, nargs = -1, nenv = -1;
  int n = 0;
  while (n < need) {
    char *z = memchr(buf + off, 0, used - off);
    if (!z) return 0;
    if (n >= MAX_FIELDS) return -1;
    f[n++] = buf + off;
    off = (size_t)(z - buf) + 1;
    if (n == 4) {
      if (!id_ok(f[0]) || (nargs = count_of(f[3])) < 1) return -1;
      need = 4 + nargs + 1;
    } else if (nargs >= 0 && nenv < 0 && n == 4 + nargs + 1) {
      if ((nenv = count_of(f[n - 1])) < 0) return -1;
      need += nenv;
    }
  }
  if (need + 2 > MAX_FIELDS) return -1;
  return (long)off;
}

/* `from` as fd `to`, inherited across exec (dup2 leaves O_CLOEXEC set when they are the same fd). */
static int move_fd(int from, int to) {
  if (from == to) return fcntl(to, F_SETFD, 0);
  return dup2(from, to) < 0 ? -1 : 0;
}

/* In the forked child: never returns. A failure is written to `err` (a CLOEXEC pipe to the launcher). */
static void child(char **f, int err) {
  long nargs = count_of(f[3]);
  long nenv = count_of(f[4 + nargs]);
  char *args[MAX_FIELDS + 1], *env[MAX_FIELDS + 1];
  for (long i = 0; i < nargs; i++) args[i] = f[4 + i];
  args[nargs] = NULL;
  for (long i = 0; i < nenv; i++) env[i] = f[4 + nargs + 1 + i];
  env[nenv] = NULL;
  /* A clean start: every signal at its default, none blocked (the launcher blocks SIGCHLD and ignores SIGPIPE). */
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  const char *what = "setsid";
  const char *path = "";
  int out = -1, sync = -1, null = -1;
  if (setsid() < 0) goto fail;
  what = "chdir";
  path = "/";
  if (chdir("/") < 0) goto fail;
  what = "cannot open";
  path = f[1];
  if ((out = open(f[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) goto fail;
  path = f[2];
  if ((sync = open(f[2], O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) goto fail;
  path = "/dev/null";
  if ((null = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) goto fail;
  /* Above 3 each (0-2 are the launcher's pipes and stderr, 3 its signalfd), so no copy overwrites
   * another; every other fd of the launcher is CLOEXEC (err too: exec closes it, which is the
   * launcher's sign of success). */
  what = "dup2";
  path = "";
  if (move_fd(null, 0) < 0 || move_fd(out, 1) < 0 || move_fd(out, 2) < 0 || move_fd(sync, 3) < 0) goto fail;
  what = "cannot run";
  path = args[0];
  execve(args[0], args, env);
fail:;
  char msg[512];
  int n = snprintf(msg, sizeof msg, "%s%s%s: %s", what, *path ? " " : "", path, strerror(errno));
  if (n > 0) {
    for (int i = 0; i < n && i < (int)sizeof msg; i++)
      if (msg[i] == '\n') msg[i] = ' ';
    ssize_t w = write(err, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    (void)w;
  }
  _exit(127);
}

static void start(char **f) {
  const char *id = f[0];
  if (npending >= MAX_PENDING) {
    reply(id, "error", "too many processes waited for");
    return;
  }
  /* The child's failure before exec comes back on this pipe; exec closes it (CLOEXEC): EOF. */
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) < 0) {
    reply(id, "error", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    reply(id, "error", strerror(errno));
    close(errp[0]);
    close(errp[1]);
    return;
  }
  if (pid == 0) {
    close(errp[0]);
    child(f, errp[1]);
  }
  close(errp[1]);
  char msg[512];
  ssize_t n;
  do n = read(errp[0], msg, sizeof msg - 1);
  while (n < 0 && errno == EINTR);
  close(errp[0]);
  pending[npending].pid = pid;
  pending[npending].answered = n > 0;
  strcpy(pending[npending].id, id);
  npending++;
  if (n > 0) {
    msg[n] = 0;
    reply(id, "error", msg); /* its exit (127) is reaped without a second answer */
  }
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < npending; i++) {
      if (pending[i].pid != pid) continue;
      char n[16];
      snprintf(n, sizeof n, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      if (!pending[i].answered) reply(pending[i].id, WIFEXITED(status) ? "exit" : "signal", n);
      pending[i] = pending[--npending];
      break;
    }
  }
}

int main(void) {
  /* Whatever the launcher inherited above stderr stays out of the programs (Node passes none). */
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0) return 1;
  signal(SIGPIPE, SIG_IGN);
  /* The launches acetate is finishing are not cut (the programs get every signal at its default
   * again, child()). */
  end_only_with_stdin();
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  /* The pipes to acetate must not reach the programs (dup2 over 0-2 replaces them there anyway). */
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  /* Reading ends at the end of stdin or at a malformed request; the launcher ends once every
   * process it started has been answered for (an answer acetate waits for is never dropped). */
  int reading = 1, status = 0;
  struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  while (reading || npending > 0) {
    if (peer_gone) reading = 0; /* an answer could not be written: acetate is gone */
    if (poll(p, reading ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      reap();
    }
    if (reading && p[1].revents) {
      if (used == sizeof buf) { /* a request over 1 MiB: acetate never sends one */
        reading = 0;
        status = 1;
        continue;
      }
      ssize_t r = read(0, buf + used, sizeof buf - used);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { /* acetate closed stdin, or is gone */
        reading = 0;
        continue;
      }
      used += (size_t)r;
      for (;;) {
        char *f[MAX_FIELDS];
        long took = take_request(f);
        if (took < 0) {
          reading = 0;
          status = 1;
          break;
        }
        if (took == 0) break;
        start(f);
        memmove(buf, buf + took, used - (size_t)took);
        used -= (size_t)took;
      }
    }
  }
  return status;
}
