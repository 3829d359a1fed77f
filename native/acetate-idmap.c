/*
 * acetate-idmap: idmapped bind mounts of a container's rootfs layers, in one call per start.
 *
 *   acetate-idmap HOSTID COUNT SRC TARGET [SRC TARGET...]
 *   acetate-idmap --hold HOSTID COUNT SRC TARGET [SRC TARGET...]
 *   acetate-idmap --release TARGET...     detach what is mounted there (none: nothing to do)
 *   acetate-idmap [--hold] --ids UIDS GIDS [--ids-from K] HOSTID COUNT SRC TARGET...
 *   acetate-idmap --serve                 the same, asked for on stdin (below)
 *
 * --ids maps only the listed ids (`0-99,65534`: ranges and ids below COUNT) for users and groups:
 * the node's files owned by any other id are seen as the overflow id (nobody) and the container's
 * root cannot override their permissions (the host template maps only the ids of the OS' files,
 * so a service's data made on the node after the container started stays closed, see
 * src/runtime/walls/host-ids.ts). With --ids-from K it applies to the layers from the K-th (0-based)
 * on, and the first K are mapped whole: acetate's own layers above the node's `/` (the host view's
 * markers, src/runtime/walls/host-layer.ts), which hold no node data and whose owners (a hidden
 * service dir's, shown empty) must stay the container's to write.
 *
 * With --hold, once every layer is mounted it prints `ready` and waits for the end of its stdin,
 * then detaches the targets itself: acetate closes stdin once runc has created the container (the
 * overlay keeps its own clones of the layers), and if acetate dies before, the kernel closes it,
 * so the mounts never outlive the start that made them (one process per start, none to release).
 * acetate itself now uses --serve; the benchmarks' bare loop uses --hold (bench/baseline).
 *
 * With --serve it stays, and makes and ends holds on request, so that a start costs acetate no
 * process of its own (a fork of acetate's large Node process took 2-10 ms of its one thread per
 * start). stdin: requests as NUL-terminated fields, `ID NARGS ARG...` (requests.h):
 *     ID NARGS hold HOLDID [--ids UIDS GIDS [--ids-from K]] HOSTID COUNT SRC TARGET...   answered `ID ready N`
 *     ID 2 release HOLDID                                                 answered `ID released HOLDID`
 * HOLDID is the caller's name for the hold (1 to 20 digits, unique among the holds it made);
 * or `ID error REASON` (nothing of that hold is left mounted, or, for a release, the detach that
 * failed). One request at a time, each a few ms at most (no child outlives it). The end of stdin
 * (acetate exiting or dying), a malformed request or an answer that cannot be written (acetate
 * gone) detaches every hold still made, then exits: as with --hold, no mount outlives the acetate
 * that asked for it. A hold's mounts are detached by their mount ids, each only while it is still
 * the one at its target: a server that ends late (its acetate died while it was stopped or stuck)
 * never detaches what a newer acetate's start mounted at the same path. It ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT (sent to acetate's process
 * group, they end acetate, and so the server, by its stdin). A server killed (SIGKILL) or stuck
 * past acetate's time limit leaves its holds to acetate: each start's release, or the next scrub,
 * detaches them with --release.
 *
 * Each SRC (a directory: the node's `/`, an imported template's rootfs, an image layer) is bound
 * read-only at TARGET (an existing empty directory) with ids 0..COUNT-1 of its files seen as
 * HOSTID..HOSTID+COUNT-1, the container's user namespace range: the layers stay owned by node
 * root on disk, shared by every container, never copied or chowned. Binds are not recursive:
 * overlayfs takes a lower layer without its submounts anyway (as with the plain `/` lower).
 *
 * How: a child enters a new user namespace, the parent writes its uid_map/gid_map and opens
 * /proc/<child>/ns/user; then per layer open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP
 * | MOUNT_ATTR_RDONLY) + move_mount. Every mount is made before any is moved: on error nothing
 * is left mounted by this call (exit 1, the reason on stderr).
 *
 * Why C: Node has no binding for open_tree/mount_setattr/move_mount; the npm packages that make
 * syscalls build native addons at install time (install scripts), util-linux 2.38's mount lacks
 * X-mount.idmap (2.39) and runc 1.1.5 lacks idmapped mount entries (1.2). A Python ctypes script
 * would pay the interpreter's start per container (≈ 465 ms of CPU on the test node under load,
 * README); this binary adds ≈ 3 ms of CPU to its own process start, for 1 or 5 layers alike.
 * Built with gcc by scripts/setup.sh and `npm run build` (scripts/build-native.sh), with the
 * mounts themselves in idmap-mount.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "idmap-mount.h"
#include "requests.h"

struct hold {
  char id[24];
  int n;
  char **targets; /* malloc'd, each malloc'd */
  unsigned long long ids[MAX_LAYERS]; /* the mounts' ids (release_own) */
};

#define MAX_HOLDS 4096
static struct hold holds[MAX_HOLDS];
static int nholds;

static void forget(int i) {
  for (int j = 0; j < holds[i].n; j++) free(holds[i].targets[j]);
  free(holds[i].targets);
  holds[i] = holds[--nholds];
}

static void serve_hold(const char *id, const char *hold_id, int argc, char **argv) {
  int taken = 0;
  for (int i = 0; i < nholds; i++) taken |= strcmp(holds[i].id, hold_id) == 0;
  if (!id_ok(hold_id) || taken) {
    reply(id, "error", "a hold's id must be 1 to 20 digits, not one in use");
    return;
  }
  if (nholds >= MAX_HOLDS) {
    reply(id, "error", "too many holds");
    return;
  }
  struct hold *h = &holds[nholds];
  if (mount_layers(argc, argv, h->ids) != 0) {
    reply(id, "error", reason);
    return;
  }
  char *targets[MAX_LAYERS];
  int n = targets_of(argc, argv, targets);
  h->targets = calloc((size_t)n, sizeof *h->targets);
  int ok = h->targets != NULL;
  for (int i = 0; ok && i < n; i++) ok = (h->targets[i] = strdup(targets[i])) != NULL;
  if (!ok) { /* out of memory: the mounts go at once rather than be held by no one */
    release_own(n, targets, h->ids);
    if (h->targets)
      for (int i = 0; i < n; i++) free(h->targets[i]);
    free(h->targets);
    reply(id, "error", "out of memory");
    return;
  }
  snprintf(h->id, sizeof h->id, "%s", hold_id);
  h->n = n;
  nholds++;
  char detail[16];
  snprintf(detail, sizeof detail, "%d", n);
  reply(id, "ready", detail);
}

static void serve_release(const char *id, const char *hold_id) {
  for (int i = 0; i < nholds; i++) {
    if (strcmp(holds[i].id, hold_id) != 0) continue;
    int failed = release_own(holds[i].n, holds[i].targets, holds[i].ids);
    forget(i);
    if (failed) reply(id, "error", reason);
    else reply(id, "released", hold_id);
    return;
  }
  reply(id, "error", "no such hold");
}

static char request[MAX_REQUEST];
static size_t used;

/* One complete request at the start of `request` split into f: the bytes it takes, 0 if not complete yet, -1 if malformed. */
static long take_request(char **f, long *nf) {
  size_t off = 0;
  long need = 2;
  int n = 0;
  while (n < need) {
    char *z = memchr(request + off, 0, used - off);
    if (!z) return 0;
    f[n++] = request + off;
    off = (size_t)(z - request) + 1;
    if (n == 2) {
      long nargs = count_of(f[1]);
      if (!id_ok(f[0]) || nargs < 1 || nargs + 2 > MAX_FIELDS) return -1;
      need = 2 + nargs;
    }
  }
  *nf = n;
  return (long)off;
}

/* --serve: holds made and ended on request until the end of stdin; then every hold left is detached. */
static int serve(void) {
  int status = 0;
  for (;;) {
    if (used == sizeof request) { /* over 1 MiB: acetate never sends one */
      status = 1;
      break;
    }
    if (peer_gone) break; /* an answer could not be written: acetate is gone */
    ssize_t r = read(0, request + used, sizeof request - used);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* acetate closed stdin, or is gone */
    used += (size_t)r;
    long took, nf;
    static char *f[MAX_FIELDS];
    while ((took = take_request(f, &nf)) > 0) {
      if (strcmp(f[2], "hold") == 0 && nf >= 4) serve_hold(f[0], f[3], (int)nf - 4, f + 4);
      else if (strcmp(f[2], "release") == 0 && nf == 4) serve_release(f[0], f[3]);
      else reply(f[0], "error", "unknown request");
      memmove(request, request + took, used - (size_t)took);
      used -= (size_t)took;
    }
    if (took < 0) {
      status = 1;
      break;
    }
  }
  while (nholds > 0) {
    if (release_own(holds[0].n, holds[0].targets, holds[0].ids)) fprintf(stderr, "acetate-idmap: %s\n", reason);
    forget(0);
  }
  return status;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a reader gone: the write fails, the holds are detached */
  if (argc == 2 && strcmp(argv[1], "--serve") == 0) {
    end_only_with_stdin(); /* then it detaches what it holds */
    return serve();
  }
  if (argc >= 2 && strcmp(argv[1], "--release") == 0) {
    if (release(argc - 2, argv + 2) == 0) return 0;
    fprintf(stderr, "acetate-idmap: %s\n", reason);
    return 1;
  }
  int hold = argc >= 2 && strcmp(argv[1], "--hold") == 0;
  int skip = hold ? 2 : 1;
  static unsigned long long ids[MAX_LAYERS];
  int status = mount_layers(argc - skip, argv + skip, ids);
  if (status) {
    fprintf(stderr, "acetate-idmap: %s\n", reason);
    return status;
  }
  if (!hold) return 0;
  char *targets[MAX_LAYERS], buf[256];
  int n = targets_of(argc - skip, argv + skip, targets);
  /* A reader gone (write fails) or stdin at its end: either way the mounts go now. */
  if (write(1, "ready\n", 6) == 6)
    while (read(0, buf, sizeof buf) > 0) {
    }
  if (release_own(n, targets, ids) == 0) return 0;
  fprintf(stderr, "acetate-idmap: %s\n", reason);
  return 1;
}
