/* acetate-idmap's mounts (idmap-mount.c). */
#ifndef ACETATE_IDMAP_MOUNT_H
#define ACETATE_IDMAP_MOUNT_H

#define MAX_LAYERS 512

/* The last failure's reason: printed to stderr by the one-shot modes, answered by --serve. */
extern char reason[1024];

/*
 * Mounts the layers of `[--ids UIDS GIDS] HOSTID COUNT SRC TARGET...` (argv[0..argc-1]): 0, or 1
 * with nothing left mounted (unless `reason` says which could not be detached again), or 2 for a
 * malformed request. ids (MAX_LAYERS): each layer's mount id, 0 when it could not be read.
 */
int mount_layers(int argc, char **argv, unsigned long long *ids);

/* The targets of such arguments, into out (MAX_LAYERS at most): how many. */
int targets_of(int argc, char **argv, char **out);

/* umount2(MNT_DETACH) each target, whatever is mounted there (none is fine): 0, or 1 naming the first that failed. */
int release(int n, char **targets);

/*
 * Detaches the mounts a hold made, each only while it is still the one at its target (by mount
 * id): a server whose acetate died and that ends late (it was stopped, or stuck) must not detach
 * what a newer acetate mounted at the same path. 0, or 1 naming the first that failed.
 */
int release_own(int n, char **targets, const unsigned long long *ids);

#endif
