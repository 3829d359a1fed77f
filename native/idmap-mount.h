/* acetate-idmap's mounts (idmap-mount.c). */
#ifndef ACETATE_IDMAP_MOUNT_H
#define ACETATE_IDMAP_MOUNT_H

#define MAX_LAYERS 512

/* The last failure's reason: printed to stderr by the one-shot modes, answered by --serve. */
extern char reason[1024];

/*
 * Mounts the layers of `[--ids UIDS GIDS] HOSTID COUNT SRC TARGET...` (argv[0..argc-1]): 0, or 1
 * with nothing left mounted (unless `reason` says which could not be detached again), or 2 for a
 * malformed request.
 */
int mount_layers(int argc, char **argv);

/* The targets of such arguments, into out (MAX_LAYERS at most): how many. */
int targets_of(int argc, char **argv, char **out);

/* umount2(MNT_DETACH) each target (none mounted there is fine): 0, or 1 naming the first that failed. */
int release(int n, char **targets);

#endif
