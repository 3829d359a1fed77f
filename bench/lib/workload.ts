/**
 * The benchmark's containers: `sleep` on the host template with small limits, as acetate manifests
 * and as the equivalent OCI config for the bare loop (built by acetate's own config builder, so both
 * run exactly the same container).
 */
import { mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import yaml from 'js-yaml';
import { normalizeManifest } from '../../src/api/normalize.js';
import type { ContainerManifest } from '../../src/api/types.js';
import { buildOciConfig, resolveCapabilities, type OciConfigInput } from '../../src/runtime/runc/oci-config.js';
import { seccompFor } from '../../src/runtime/walls/seccomp.js';
import { HOST_TMPFS } from '../../src/runtime/walls/host-masks.js';
import { hostTemplateMounts } from '../../src/runtime/walls/walls.js';
import { hasSwapAccounting } from '../../src/runtime/runc/cgroups.js';
import { hostNofileHard, readBoundingCapabilities } from '../../src/runtime/runc/procfs.js';

/**
 * A benchmark container: `sleep` (or command) on the host template (or template) with small limits;
 * diskMi: a disk of that size (resources.disk); extra: more lines under spec.
 */
export function containerYaml(name: string, o: { memoryMi?: number; diskMi?: number; template?: string; command?: string[]; extra?: string } = {}): string {
  return `apiVersion: acetate.dev/v1alpha1
kind: Container
metadata:
  name: ${name}
spec:
  template: ${o.template ?? 'host'}
  command: ${o.command ? JSON.stringify(o.command) : '["/bin/sleep", "1000000"]'}
  terminationGracePeriodSeconds: 0
  resources: { cpu: 100m, memory: ${o.memoryMi ?? 32}Mi, pids: 16${o.diskMi === undefined ? '' : `, disk: ${o.diskMi}Mi`} }
${o.extra ?? ''}`;
}

export const nameOf = (i: number): string => `b${String(i).padStart(4, '0')}`;

/** N containers in one file: creating them all is one manifest change. */
export async function writeOneFile(dir: string, n: number): Promise<string> {
  const file = path.join(dir, 'containers.yaml');
  const docs = Array.from({ length: n }, (_, i) => containerYaml(nameOf(i)));
  await writeFile(file, docs.join('---\n'));
  return file;
}

/** One file per container (so that editing one file changes one container). */
export async function writeFilePerContainer(dir: string, n: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(path.join(dir, `${nameOf(i)}.yaml`), containerYaml(nameOf(i)));
}

/** What an editor does on save: write a temp file, rename it over the old one. */
export async function saveAtomically(file: string, content: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.swp`);
  await writeFile(tmp, content);
  await rename(tmp, file);
}

/**
 * The OCI config the bare loop uses: acetate's own config for the same container, with @ROOTFS@
 * and @ID@ placeholders and the baseline's own cgroup parent.
 */
export async function baselineConfigTemplate(
  workRoot: string,
  extra?: Partial<OciConfigInput>,
  opts: { manifestYaml?: string } = {},
): Promise<{ file: string; cgroupParent: string }> {
  const manifest = yaml.load(opts.manifestYaml ?? containerYaml('placeholder')) as ContainerManifest;
  // The same isolation acetate gives a host-template container by default (seccomp, the host
  // template's masks, its own work dir hidden as a state dir), unless the caller says otherwise.
  extra ??= await defaultIsolation(workRoot);
  const d = normalizeManifest(manifest, { kind: 'file', file: '/bench', line: 1 });
  const cgroupParent = `acetate-bench-base-${path.basename(workRoot).replace(/[^a-zA-Z0-9]/g, '')}`;
  const config = buildOciConfig({
    namespace: 'default',
    name: 'placeholder',
    spec: { ...d.spec, hostname: 'ID_PLACEHOLDER' },
    specHash: 'baseline',
    rootfsPath: '/ROOTFS_PLACEHOLDER',
    cgroupsPath: `/${cgroupParent}/ID_PLACEHOLDER`,
    hostNofileHard: await hostNofileHard(),
    swapAccounting: await hasSwapAccounting(),
    boundingCapabilities: await readBoundingCapabilities(),
    ...extra,
  });
  const text = JSON.stringify(config, null, 2)
    .replace(/\/ROOTFS_PLACEHOLDER/g, '@ROOTFS@')
    .replace(/ID_PLACEHOLDER|placeholder/g, '@ID@');
  const file = path.join(workRoot, 'config.template.json');
  await writeFile(file, text);
  return { file, cgroupParent };
}

/** What acetate adds by default to a host-template container's config: Docker's seccomp profile and the masks. */
export async function defaultIsolation(workRoot: string, opts: { seccomp?: boolean; masks?: boolean } = {}): Promise<Partial<OciConfigInput>> {
  const caps = resolveCapabilities({ privileged: false, noNewPrivileges: true, capAdd: [], capDrop: [] }).filter((c) => BOUNDING.includes(c));
  const seccomp = opts.seccomp === false ? undefined : seccompFor(undefined, { capabilities: caps, privileged: false });
  // The host template's mounts (its private /run); the rest of its view is markers in the upper dir, not config.
  const masks = opts.masks === false ? undefined : hostTemplateMounts({ tmpfs: HOST_TMPFS });
  return { ...(seccomp ? { seccomp } : {}), ...(masks ? { isolationMounts: masks } : {}) };
}
const BOUNDING = await readBoundingCapabilities();

/**
 * Where every benchmark directory goes (state dirs, the bare loop's work dirs, manifests): next to
 * acetate's default state dir (/var/lib/acetate) unless `--work-dir` says otherwise. Both sides of
 * every comparison live there, on the filesystem where acetate keeps its state by default.
 */
let workRoot = '/var/lib/acetate-bench';

export function setWorkRoot(dir: string): void {
  workRoot = path.resolve(dir);
}

export function getWorkRoot(): string {
  return workRoot;
}

export async function tmpDir(prefix: string): Promise<string> {
  await mkdir(workRoot, { recursive: true, mode: 0o700 });
  return mkdtemp(path.join(workRoot, prefix));
}
