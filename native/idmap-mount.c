/*
 * The mounts of acetate-idmap (its header says what and why): a user namespace with a container's
 * mapping, each layer bound idmapped and read-only at its target, and their detach.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/mount.h> /* glibc 2.36: open_tree, move_mount, mount_setattr, struct mount_attr */
#include "idmap-mount.h"

/* Linux 6.8: a mount id never reused (STATX_MNT_ID's are: a detached mount's id goes to the next
 * mount, which is how a late release would take a newer mount for its own). glibc 2.36 lacks it. */
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif

/* The last failure's reason: printed to stderr by the one-shot modes, answered by --serve. */
char reason[1024];

static int fail(const char *what, const char *path) {
  snprintf(reason, sizeof reason, "%s%s%s: %s", what, path ? " " : "", path ? path : "", strerror(errno));
  return 1;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int parse_id(const char *s, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(s, &end, 10);
  return errno == 0 && *s && !*end && *out <= UINT32_MAX ? 0 : -1;
}

#define MAP_BYTES 8192

/* `0-99,65534` → uid_map lines "first host+first n" (ids below count, at most 340 extents); -1 if malformed. */
static int map_lines(const char *list, unsigned long host, unsigned long count, char *out, size_t size) {
  size_t used = 0;
  int extents = 0;
  const char *s = list;
  out[0] = 0;
  while (*s) {
    char *end;
    errno = 0;
    unsigned long a = strtoul(s, &end, 10), b = a;
    if (errno || end == s) return -1;
    s = end;
    if (*s == '-') {
      b = strtoul(s + 1, &end, 10);
      if (errno || end == s + 1) return -1;
      s = end;
    }
    if (*s == ',') s++;
    else if (*s) return -1;
    if (b < a || b >= count || ++extents > 340) return -1;
    int n = snprintf(out + used, size - used, "%lu %lu %lu\n", a, host + a, b - a + 1);
    if (n < 0 || (size_t)n >= size - used) return -1;
    used += n;
  }
  return extents ? 0 : -1;
}

static void close_all(int *fds, int n) {
  for (int i = 0; i < n; i++) close(fds[i]);
}

/* A user namespace with these uid_map and gid_map lines: its fd, or -1. */
static int userns_fd(const char *uid_map, const char *gid_map) {
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return -1;
  if (pipe2(hold, O_CLOEXEC) < 0) {
    close_all(ready, 2);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) { /* the server lives on: nothing of this attempt stays open */
    int saved = errno;
    close_all(ready, 2);
    close_all(hold, 2);
    errno = saved;
    return -1;
  }
  if (pid == 0) {
    close(ready[0]);
    close(hold[1]);
    char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1 || c != 'y') _exit(1);
    /* Stays in its namespace until the parent has taken it (closes its end of hold). */
    ssize_t r = read(hold[0], &c, 1);
    _exit(r < 0);
  }
  close(ready[1]);
  close(hold[0]);
  char path[64], c = 'n';
  int fd = -1;
  if (read(ready[0], &c, 1) == 1 && c == 'y') {
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    if (write_file(path, uid_map) == 0) {
      snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
      if (write_file(path, gid_map) == 0) {
        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
      }
    }
  } else {
    errno = EPERM;
  }
  int saved = errno;
  close(hold[1]);
  close(ready[0]);
  waitpid(pid, NULL, 0);
  errno = saved;
  return fd;
}

/* umount2(MNT_DETACH) each target; one that is not a mount point (EINVAL) or absent is fine. */
int release(int n, char **targets) {
  int status = 0;
  for (int i = 0; i < n; i++) {
    while (umount2(targets[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    }
    /* Every target is tried: one that cannot be detached does not keep the others mounted. */
    if (errno != EINVAL && errno != ENOENT && status == 0) status = fail("cannot detach", targets[i]);
  }
  return status;
}

/* The id of the mount at path (the top one there), or 0 when it cannot be told; -1 when path is gone. */
static long long mount_id_at(const char *path) {
  struct statx stx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID_UNIQUE, &stx) < 0) return errno == ENOENT ? -1 : 0;
  return (stx.stx_mask & STATX_MNT_ID_UNIQUE) ? (long long)stx.stx_mnt_id : 0;
}

int release_own(int n, char **targets, const unsigned long long *ids) {
  int status = 0;
  for (int i = 0; i < n; i++) {
    if (ids[i] == 0) { /* its id unknown (a kernel before 6.8): detached by path, as --release does */
      if (release(1, &targets[i]) && status == 0) status = 1;
      continue;
    }
    long long at = mount_id_at(targets[i]);
    /* Gone, or another's now (a newer acetate's start of the same container, after its scrub
     * detached this one): not touched. */
    if (at < 0 || (unsigned long long)at != ids[i]) continue;
    if (umount2(targets[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT && status == 0) status = fail("cannot detach", targets[i]);
  }
  return status;
}

/* `[--ids UIDS GIDS [--ids-from K]]` at argv's start: how many fields they take, or -1 if malformed. */
static int options_of(int argc, char **argv, const char **uids, const char **gids, unsigned long *from) {
  *uids = *gids = NULL;
  *from = 0;
  if (argc < 3 || strcmp(argv[0], "--ids") != 0) return 0;
  *uids = argv[1];
  *gids = argv[2];
  if (argc < 5 || strcmp(argv[3], "--ids-from") != 0) return 3;
  return parse_id(argv[4], from) == 0 && *from <= MAX_LAYERS ? 5 : -1;
}

/*
 * Mounts the layers of `[--ids UIDS GIDS [--ids-from K]] HOSTID COUNT SRC TARGET...`
 * (argv[0..argc-1]): 0, or 1 with nothing left mounted, or 2 for a malformed request (the reason
 * in `reason` either way). With --ids-from K, --ids applies to layers K on; the first K are mapped
 * whole (acetate's own layers, such as the host view's markers: they hold no node data).
 */
int mount_layers(int argc, char **argv, unsigned long long *ids) {
  unsigned long host, count;
  const char *uids, *gids;
  unsigned long from; /* the first layer --ids applies to: those before are mapped whole */
  int skip = options_of(argc, argv, &uids, &gids, &from);
  if (skip > 0) {
    argv += skip;
    argc -= skip;
  }
  if (skip < 0 || argc < 4 || argc % 2 != 0 || (argc - 2) / 2 > MAX_LAYERS || parse_id(argv[0], &host) || parse_id(argv[1], &count) || count == 0 ||
      host + count > UINT32_MAX) {
    snprintf(reason, sizeof reason,
             "usage: acetate-idmap [--hold] [--ids UIDS GIDS [--ids-from K]] HOSTID COUNT SRC TARGET [SRC TARGET...] (at most %d layers)", MAX_LAYERS);
    return 2;
  }
  static char uid_map[MAP_BYTES], gid_map[MAP_BYTES], whole[64];
  snprintf(whole, sizeof whole, "0 %lu %lu\n", host, count);
  if (uids) {
    if (map_lines(uids, host, count, uid_map, sizeof uid_map) || map_lines(gids, host, count, gid_map, sizeof gid_map)) {
      snprintf(reason, sizeof reason, "--ids takes ids and ranges below COUNT, like 0-99,65534 (at most 340)");
      return 2;
    }
  } else {
    snprintf(uid_map, sizeof uid_map, "%s", whole);
    snprintf(gid_map, sizeof gid_map, "%s", whole);
  }
  int n = (argc - 2) / 2, made = 0, moved = 0, status = 0;
  if (from >= (unsigned long)n) { /* --ids would map no layer: a mistake, never the node's `/` mapped whole */
    snprintf(reason, sizeof reason, "--ids-from takes a layer before the last (%d layers)", n);
    return 2;
  }
  int ns = userns_fd(uid_map, gid_map);
  if (ns < 0) return fail("cannot make the user namespace", NULL);
  int ns_whole = uids && from > 0 ? userns_fd(whole, whole) : ns;
  if (ns_whole < 0) {
    status = fail("cannot make the user namespace", NULL);
    close(ns);
    return status;
  }
  static int trees[MAX_LAYERS];
  for (; made < n; made++) {
    const char *src = argv[2 + 2 * made];
    trees[made] = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (trees[made] < 0) {
      status = fail("open_tree", src);
      break;
    }
    int layer_ns = (unsigned long)made < from ? ns_whole : ns;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, .userns_fd = (uint64_t)layer_ns};
    if (mount_setattr(trees[made], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
      status = fail("mount_setattr (idmap)", src);
      close(trees[made]);
      break;
    }
  }
  /* Every mount is made before any is moved: on error nothing is left mounted. */
  for (; status == 0 && moved < n; moved++) {
    const char *target = argv[3 + 2 * moved];
    ids[moved] = 0;
    if (move_mount(trees[moved], "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) == 0) {
      /* The mount's id, to detach it alone at the release (release_own). */
      struct statx stx;
      if (statx(trees[moved], "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE, &stx) == 0 && (stx.stx_mask & STATX_MNT_ID_UNIQUE)) ids[moved] = stx.stx_mnt_id;
    } else {
      status = fail("move_mount to", target);
      for (int j = 0; j < moved; j++)
        if (umount2(argv[3 + 2 * j], MNT_DETACH) < 0) { /* said, not hidden: this one stays mounted */
          size_t len = strlen(reason);
          snprintf(reason + len, sizeof reason - len, "; and cannot detach %s again: %s", argv[3 + 2 * j], strerror(errno));
        }
    }
  }
  for (int i = 0; i < made; i++) close(trees[i]); /* a moved tree stays mounted where it went */
  if (ns_whole != ns) close(ns_whole);
  close(ns);
  return status;
}

/* The targets of `[--ids U G [--ids-from K]] HOSTID COUNT SRC TARGET...` (argc, argv as mount_layers takes them). */
int targets_of(int argc, char **argv, char **out) {
  const char *u, *g;
  unsigned long from;
  int skip = options_of(argc, argv, &u, &g, &from), n = 0;
  if (skip < 0) return 0;
  for (int i = skip + 3; i < argc; i += 2) out[n++] = argv[i];
  return n;
}

