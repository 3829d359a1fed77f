/** Where acetate keeps its state unless told otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/acetate';
/** The run dir of the default state dir (a tmpfs on systemd hosts and Kubernetes nodes). */
export const DEFAULT_RUN_DIR = '/run/acetate';
