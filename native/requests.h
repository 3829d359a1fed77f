/*
 * What acetate's two long-lived helpers (acetate-launch, acetate-idmap --serve) share: requests on
 * stdin as runs of NUL-terminated fields that start with the caller's ID, and one answer line per
 * request on stdout, `ID WORD DETAIL`. Included by both (each is one translation unit).
 */
#ifndef ACETATE_REQUESTS_H
#define ACETATE_REQUESTS_H
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* At most this many fields and bytes per request (util/answering-helper.ts checks the same limits). */
#define MAX_FIELDS 4096
#define MAX_REQUEST (1 << 20)

/* Set once a write to acetate failed: acetate is gone; each helper then ends its own way (its
 * holds detached, its children answered for) rather than at once. */
static int peer_gone;

/* All of it, or peer_gone set. */
static void write_all(int fd, const char *p, size_t n) {
  while (n > 0 && !peer_gone) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      peer_gone = 1;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* `ID WHAT DETAIL\n`, cut to one line of 255 bytes (the detail is a reason: strerror and acetate's own paths). */
static void reply(const char *id, const char *what, const char *detail) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s %s %s", id, what, detail);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
  for (size_t i = 0; i < len; i++)
    if (line[i] == '\n') line[i] = ' ';
  line[len] = '\n';
  write_all(1, line, len + 1);
}

/*
 * A helper's end is the end of its stdin (acetate exiting or dying), once it has answered or
 * undone what it was asked: a Ctrl-C, SIGTERM, SIGHUP or SIGQUIT sent to acetate's process group
 * ends acetate, and so the helper, that way, not in the middle of a request.
 */
static void end_only_with_stdin(void) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
}

/* An id: 1 to 20 digits. */
static int id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 20) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* A count field: digits only, 0..MAX_FIELDS; -1 if not. */
static long count_of(const char *s) {
  if (*s == 0 || strlen(s) > 5) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  long n = strtol(s, NULL, 10);
  return n <= MAX_FIELDS ? n : -1;
}

#endif
