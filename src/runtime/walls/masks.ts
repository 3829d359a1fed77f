/**
 * The masks every unprivileged container gets over /proc and /sys (linux.maskedPaths and
 * linux.readonlyPaths of its OCI config): runc's `runc spec` defaults, as Docker and Podman set them.
 */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];
// /sys/fs/cgroup: runc 1.1.5 mounts the tmpfs that holds the cgroup hierarchies read-write (only
// the hierarchies are read-only): a tenant could plant files there that fool its own programs.
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger', '/sys/fs/cgroup'];
