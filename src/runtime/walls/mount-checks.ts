/**
 * Mount checks that need the node, done before runc sees the config: runc's own refusal comes
 * as raw text after the container was half-created ("no such file or directory" of a rootfs
 * path), and names no field of the manifest.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { OciConfigError } from './errors.js';

/** Throws an OciConfigError naming `spec.mounts[i].hostPath` when a host path does not exist. */
export function refuseMissingHostPaths(mounts: readonly { hostPath: string }[], hostRoot: string): void {
  mounts.forEach((m, i) => {
    const host = path.join(hostRoot, m.hostPath);
    try {
      statSync(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist on this node' : `cannot be used (${code ?? (err as Error).message})`;
      throw new OciConfigError(`spec.mounts[${i}].hostPath: '${m.hostPath}' ${why}: create it, or fix the manifest`);
    }
  });
}
