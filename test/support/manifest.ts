/** Container manifests as a user writes them, for tests that drive the real CLI. */

export interface ManifestOptions {
  /** Full command; default: a shell that sleeps (so the process stays up). */
  command?: string[];
  /** Shorthand for command: ["/bin/sh", "-c", script]. */
  script?: string;
  state?: 'Running' | 'Stopped';
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  /** terminationGracePeriodSeconds; default 1 (test processes are PID 1 and ignore SIGTERM). */
  grace?: number;
  /** Resource values; `null` leaves the resource out. Defaults: cpu 500m, memory 64Mi, pids 64. */
  cpu?: string | null;
  memory?: string | null;
  pids?: number | null;
  /** Extra lines appended under spec (indented by two spaces). */
  extra?: string;
}

/** The lines every Container manifest starts with, down to `spec:`; the spec's lines follow, indented by two spaces. */
export function manifestHead(name: string): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
`;
}

/**
 * A Container manifest. Line numbers are stable: apiVersion 1, kind 2, metadata 3, name 4,
 * spec 5, template 6, command 7, state 8, restartPolicy 9, grace 10, resources 11, cpu/memory/pids after.
 */
export function manifest(name: string, o: ManifestOptions = {}): string {
  const command = o.command ?? ['/bin/sh', '-c', o.script ?? 'exec sleep 100000'];
  const res = [
    o.cpu === null ? '' : `    cpu: ${o.cpu ?? '500m'}\n`,
    o.memory === null ? '' : `    memory: ${o.memory ?? '64Mi'}\n`,
    o.pids === null ? '' : `    pids: ${o.pids ?? 64}\n`,
  ].join('');
  return `${manifestHead(name)}  template: host
  command: ${JSON.stringify(command)}
  state: ${o.state ?? 'Running'}
  restartPolicy: ${o.restartPolicy ?? 'Always'}
  terminationGracePeriodSeconds: ${o.grace ?? 1}
${res ? `  resources:\n${res}` : ''}${o.extra ?? ''}`;
}

/** Manifests of images: shared with the images benchmark. */
export { imageManifest } from '../../bench/lib/oci-image.js';
/** A Container whose process is `sh -c command`, with no grace period and extra lines under spec. */
export function shellManifest(name: string, o: { command: string; spec?: string; template?: string }): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata: { name: ${name} }
spec:
  template: ${o.template ?? 'host'}
  command: ["/bin/sh", "-c", ${JSON.stringify(o.command)}]
  terminationGracePeriodSeconds: 0
${o.spec ?? ''}`;
}
