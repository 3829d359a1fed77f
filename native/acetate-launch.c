/*
 * acetate-launch: starts conmon (or any supervisor acetate names) from a process that already sits
 * in the conmons' cgroup, so that each conmon is born there instead of being moved there.
 *
 * Why: moving a process into a cgroup (a write to cgroup.procs) takes the kernel's
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period when no other move
 * happened just before: 5-30 ms on the test node, paid at every container start while acetate
 * moved each new conmon out of its own cgroup (conmon-cgroup.ts). A fork inherits its parent's
 * cgroups for free. acetate starts one launcher per runtime, moves it once, and sends it requests.
 * Nothing else here does this: systemd-run moves a process per call, and Node's child_process
 * cannot start a process in another cgroup (no clone3(CLONE_INTO_CGROUP), and none on cgroup v1).
 *
 * Protocol. stdin: requests, each a run of NUL-terminated fields
 *     ID OUT SYNC NARGS ARG0 ... ARGn NENV ENV0 ... ENVn
 *   ID    the caller's number for the request (digits, at most 20)
 *   OUT   file for the program's stdout and stderr (created 0600, truncated)
 *   SYNC  file given to the program as fd 3 (created 0600 if missing, not truncated)
 *   ARG0  the program's absolute path, and argv[0]
 *   ENV   NAME=VALUE: the program's whole environment
 * stdout: one line per request when its process ends: `ID exit CODE`, `ID signal N`, or
 * `ID error REASON` (it could not be forked). A program that cannot be executed exits 127 with the
 * reason in OUT. The process runs in a new session with cwd `/`, stdin /dev/null, and no other fd.
 * The end of stdin ends the launcher (what it started runs on: conmon daemonizes).
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
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REQUEST (1 << 20)
#define MAX_FIELDS 4096
#define MAX_PENDING 4096

struct pending {
  pid_t pid;
  char id[24];
};

static struct pending pending[MAX_PENDING];
static int npending;
static char buf[MAX_REQUEST];
static size_t used;

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(1); /* acetate is gone */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void reply(const char *id, const char *what, const char *detail) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s %s %s\n", id, what, detail);
  if (n > 0) write_all(1, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* A count field: digits only, 0..MAX_FIELDS; -1 if not. */
static long count_of(const char *s) {
  if (*s == 0 || strlen(s) > 5) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  long n = strtol(s, NULL, 10);
  return n <= MAX_FIELDS ? n : -1;
}

/*
 * Splits one complete request at the start of buf into fields: returns the bytes it takes, 0 if
 * it is not complete yet, -1 if it is malformed.
 */
static long take_request(char **f, int *nf) {
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
      if ((nargs = count_of(f[3])) < 1) return -1;
      need = 4 + nargs + 1;
    } else if (nargs >= 0 && nenv < 0 && n == 4 + nargs + 1) {
      if ((nenv = count_of(f[n - 1])) < 0) return -1;
      need += nenv;
    }
  }
  if (need + 2 > MAX_FIELDS) return -1;
  *nf = n;
  return (long)off;
}

static void child(char **f, const sigset_t *mask) {
  long nargs = count_of(f[3]);
  char **argv = &f[4];
  char **envp = &f[4 + nargs + 1];
  long nenv = count_of(f[4 + nargs]);
  /* NULL-terminate both lists in place: the fields after each list are not needed any more. */
  char *args[MAX_FIELDS + 1], *env[MAX_FIELDS + 1];
  for (long i = 0; i < nargs; i++) args[i] = argv[i];
  args[nargs] = NULL;
  for (long i = 0; i < nenv; i++) env[i] = envp[i];
  env[nenv] = NULL;
  sigprocmask(SIG_SETMASK, mask, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  if (chdir("/") < 0) _exit(127);
  int out = open(f[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) _exit(127);
  int sync = open(f[2], O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (sync < 0 || null < 0) {
    dprintf(out, "acetate-launch: cannot open %s: %s\n", sync < 0 ? f[2] : "/dev/null", strerror(errno));
    _exit(127);
  }
  /* out is the lowest of the three (3 at most): copied to 1 and 2 before 3 is taken for sync. */
  if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || dup2(sync, 3) < 0) _exit(127);
  close_range(4, ~0U, 0);
  execve(args[0], args, env);
  dprintf(2, "acetate-launch: cannot run %s: %s\n", args[0], strerror(errno));
  _exit(127);
}

static void start(char **f, const sigset_t *mask) {
  const char *id = f[0];
  if (strlen(id) >= sizeof pending[0].id || npending >= MAX_PENDING) {
    reply(strlen(id) < sizeof pending[0].id ? id : "0", "error", "too many requests");
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    reply(id, "error", strerror(errno));
    return;
  }
  if (pid == 0) child(f, mask);
  pending[npending].pid = pid;
  strcpy(pending[npending].id, id);
  npending++;
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < npending; i++) {
      if (pending[i].pid != pid) continue;
      char n[16];
      snprintf(n, sizeof n, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      reply(pending[i].id, WIFEXITED(status) ? "exit" : "signal", n);
      pending[i] = pending[--npending];
      break;
    }
  }
}

int main(void) {
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &old) < 0) return 1;
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  /* The pipes to acetate must not reach the programs (dup2 over 0-2 closes them there anyway). */
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      reap();
    }
    if (p[0].revents) {
      if (used == sizeof buf) return 1; /* a request over 1 MiB: acetate never sends one */
      ssize_t r = read(0, buf + used, sizeof buf - used);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0; /* acetate closed stdin, or is gone */
      used += (size_t)r;
      for (;;) {
        char *f[MAX_FIELDS];
        int nf = 0;
        long took = take_request(f, &nf);
        if (took < 0) return 1;
        if (took == 0) break;
        start(f, &old);
        memmove(buf, buf + took, used - (size_t)took);
        used -= (size_t)took;
      }
    }
  }
}
