/**
 * Node-wide defaults for fields a manifest leaves out, set by the node's admin (a flag of the
 * acetate command, or its environment, which `acetate run` and its systemd unit pass on). Applied
 * where a manifest is normalized, so that `plan`, `apply`, `run` and the Kubernetes source all
 * see the same spec.
 *
 * ACETATE_DEFAULT_DISK (`--default-disk`): the `resources.disk` of a container that sets none,
 * such as "10Gi". Without it a container without `resources.disk` has an unbounded private area:
 * it can write until the state dir's filesystem is full (see README, "Disk").
 */
import { MIN_DISK_BYTES, parseDisk, QuantityError } from './quantity.js';

/** The problem with ACETATE_DEFAULT_DISK, in words, or undefined when it is unset or valid. */
export function defaultDiskProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env.ACETATE_DEFAULT_DISK;
  if (v === undefined || v === '') return undefined;
  const shown = JSON.stringify(v.slice(0, 40));
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$/.test(v))
    return `--default-disk/ACETATE_DEFAULT_DISK ${shown} is not a quantity such as 10Gi`;
  try {
    if (parseDisk(v) < MIN_DISK_BYTES) return `--default-disk/ACETATE_DEFAULT_DISK ${shown} is below 16Mi, the smallest XFS filesystem`;
  } catch (err) {
    if (err instanceof QuantityError) return `--default-disk/ACETATE_DEFAULT_DISK ${shown}: ${err.message}`;
    throw err;
  }
  return undefined;
}

/** The node's default disk size in bytes, or undefined (unbounded private areas). Throws on a bad value. */
export function nodeDefaultDisk(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const problem = defaultDiskProblem(env);
  if (problem) throw new Error(problem);
  const v = env.ACETATE_DEFAULT_DISK;
  return v ? parseDisk(v) : undefined;
}
