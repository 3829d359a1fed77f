/*
 * acetate-idmap: idmapped bind mounts of a container's rootfs layers, in one call per start.
 *
 *   acetate-idmap HOSTID COUNT SRC TARGET [SRC TARGET...]
 *   acetate-idmap --hold HOSTID COUNT SRC TARGET [SRC TARGET...]
 *   acetate-idmap --release TARGET...     detach what is mounted there (none: nothing to do)
 *   acetate-idmap [--hold] --ids UIDS GIDS HOSTID COUNT SRC TARGET...
 *
 * --ids maps only the listed ids (`0-99,65534`: ranges and ids below COUNT) for users and groups:
 * the node's files owned by any other id are seen as the overflow id (nobody) and the container's
 * root cannot override their permissions (the host template maps only the ids of the OS' files,
 * so a service's data made on the node after the container started stays closed, see
 * src/runtime/walls/host-ids.ts).
 *
 * With --hold, once every layer is mounted it prints `ready` and waits for the end of its stdin,
 * then detaches the targets itself: acetate closes stdin once runc has created the container (the
 * overlay keeps its own clones of the layers), and if acetate dies before, the kernel closes it,
 * so the mounts never outlive the start that made them (one process per start, none to release).
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
 * Built with gcc by scripts/setup.sh and `npm run build` (scripts/build-native.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/mount.h> /* glibc 2.36: open_tree, move_mount, mount_setattr, struct mount_attr */

#define MAX_LAYERS 512

static int fail(const char *what, const char *path) {
  fprintf(stderr, "acetate-idmap: %s%s%s: %s\n", what, path ? " " : "", path ? path : "", strerror(errno));
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

/* A user namespace with these uid_map and gid_map lines: its fd, or -1. */
static int userns_fd(const char *uid_map, const char *gid_map) {
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
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
static int release(int n, char **targets) {
  for (int i = 0; i < n; i++) {
    while (umount2(targets[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    }
    if (errno != EINVAL && errno != ENOENT) return fail("cannot detach", targets[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  unsigned long host, count;
  if (argc >= 2 && strcmp(argv[1], "--release") == 0) return release(argc - 2, argv + 2);
  int hold = argc >= 2 && strcmp(argv[1], "--hold") == 0;
  if (hold) {
    argv++;
    argc--;
    signal(SIGPIPE, SIG_IGN);
  }
  const char *uids = NULL, *gids = NULL;
  if (argc >= 4 && strcmp(argv[1], "--ids") == 0) {
    uids = argv[2];
    gids = argv[3];
    argv += 3;
    argc -= 3;
  }
  if (argc < 5 || argc % 2 == 0 || (argc - 3) / 2 > MAX_LAYERS || parse_id(argv[1], &host) || parse_id(argv[2], &count) || count == 0 ||
      host + count > UINT32_MAX) {
    fprintf(stderr, "usage: acetate-idmap [--hold] [--ids UIDS GIDS] HOSTID COUNT SRC TARGET [SRC TARGET...] (at most %d layers)\n", MAX_LAYERS);
    return 2;
  }
  static char uid_map[MAP_BYTES], gid_map[MAP_BYTES];
  if (uids) {
    if (map_lines(uids, host, count, uid_map, sizeof uid_map) || map_lines(gids, host, count, gid_map, sizeof gid_map)) {
      fprintf(stderr, "acetate-idmap: --ids takes ids and ranges below COUNT, like 0-99,65534 (at most 340)\n");
      return 2;
    }
  } else {
    snprintf(uid_map, sizeof uid_map, "0 %lu %lu\n", host, count);
    snprintf(gid_map, sizeof gid_map, "0 %lu %lu\n", host, count);
  }
  int ns = userns_fd(uid_map, gid_map);
  if (ns < 0) return fail("cannot make the user namespace", NULL);
  int n = (argc - 3) / 2, trees[MAX_LAYERS];
  for (int i = 0; i < n; i++) {
    const char *src = argv[3 + 2 * i];
    trees[i] = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (trees[i] < 0) return fail("open_tree", src);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, .userns_fd = (uint64_t)ns};
    if (mount_setattr(trees[i], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) return fail("mount_setattr (idmap)", src);
  }
  for (int i = 0; i < n; i++) {
    const char *target = argv[4 + 2 * i];
    if (move_mount(trees[i], "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      int saved = errno;
      for (int j = 0; j < i; j++) umount2(argv[4 + 2 * j], MNT_DETACH);
      errno = saved;
      return fail("move_mount to", target);
    }
  }
  if (!hold) return 0;
  char *targets[MAX_LAYERS], buf[256];
  for (int i = 0; i < n; i++) targets[i] = argv[4 + 2 * i];
  /* A reader gone (write fails) or stdin at its end: either way the mounts go now. */
  if (write(1, "ready\n", 6) == 6)
    while (read(0, buf, sizeof buf) > 0) {
    }
  return release(n, targets);
}
