/**
 * The bare loop's config, taken from acetate itself (issue 25): one container of the manifest is
 * created by `acetate apply` in a scratch instance, the config.json acetate wrote for it is read
 * back and turned into a template, and the instance is removed. So the bare loop runs the very
 * config acetate runs (seccomp profile, masks, init, the overlay root that runc mounts, limits),
 * not one rebuilt beside it. What names that one container becomes a placeholder create.sh fills:
 *
 *   @DIR@   its private area (upper, work, rootfs under it)
 *   @ID@    its id: runc's id, hostname, the cgroup's name (under the baseline's own parent)
 *   @STATE@ the scratch instance's state dir, hidden by a mask: the bare loop hides its own dir
 *   @RUN@   the same for the scratch instance's run dir
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { instancePaths } from '../../src/runtime/runc/paths.js';
import { EMPTY_DIR_NAME, ensureEmptyDir } from '../../src/runtime/walls/empty-dir-masks.js';
import { check, type Harness } from './harness.js';

/** The one container's name: long and odd enough to occur nowhere else in a config. */
export const PROBE_NAME = 'zbenchprobe';

export interface AcetateTemplate {
  /** config.json text with the placeholders above. */
  text: string;
  /** acetate's own cgroup parent of the scratch instance (replaced, for the record). */
  cgroupParent: string;
}

/** Creates PROBE_NAME from manifestYaml (its metadata.name must be PROBE_NAME) and returns its config as a template. */
export async function acetateConfigTemplate(h: Harness, manifestYaml: string): Promise<AcetateTemplate> {
  check(manifestYaml.includes(`name: ${PROBE_NAME}`), `the probe manifest must be named ${PROBE_NAME}`);
  const inst = await h.newInstance();
  try {
    await writeFile(path.join(inst.dir, 'probe.yaml'), manifestYaml);
    const r = await h.acetate(inst, ['apply', '-f', inst.dir]);
    check(r.code === 0, `acetate apply of the probe container failed: ${r.stderr}`);
    const ip = instancePaths(inst.stateDir, inst.runDir);
    const id = `default_${PROBE_NAME}`;
    const raw = await readFile(path.join(ip.runContainersDir, id, 'bundle', 'config.json'), 'utf8');
    return {
      text: templateOf(raw, { containerDir: path.join(ip.containersDir, id), id, stateDir: ip.stateDir, runDir: ip.runDir }),
      cgroupParent: ip.cgroupParent,
    };
  } finally {
    await inst.cleanup();
  }
}

/** Pure: acetate's config of one container → the template (exported for the unit test). */
export function templateOf(raw: string, o: { containerDir: string; id: string; stateDir: string; runDir: string }): string {
  const cfg = JSON.parse(raw) as { linux?: { cgroupsPath?: string } };
  const cgroupsPath = cfg.linux?.cgroupsPath ?? '';
  check(cgroupsPath.endsWith(`/${o.id}`), `unexpected cgroupsPath ${cgroupsPath}`);
  // Longest first: the container dir is inside the state dir, the id inside the container dir.
  const text = raw
    .split(cgroupsPath)
    .join('/@PARENT@/@ID@')
    .split(o.containerDir)
    .join('@DIR@')
    .split(o.runDir)
    .join('@RUN@')
    .split(o.stateDir)
    .join('@STATE@')
    .split(o.id)
    .join('@ID@')
    .split(PROBE_NAME)
    .join('@ID@');
  return text;
}

/**
 * The template as create.sh reads it, for one bare loop: its own cgroup parent, its own dirs hidden
 * where acetate hides the scratch instance's. Writes it to `file`.
 */
export async function writeBaselineTemplate(t: AcetateTemplate, file: string, o: { cgroupParent: string; stateDir: string; runDir: string }): Promise<void> {
  const text = t.text.split('@PARENT@').join(o.cgroupParent).split('@STATE@').join(o.stateDir).split('@RUN@').join(o.runDir);
  // The empty dir acetate binds over masked dirs (src/runtime/walls/empty-dir-masks.ts), made as acetate makes it.
  if (text.includes(`${o.stateDir}/${EMPTY_DIR_NAME}"`) && !ensureEmptyDir(o.stateDir)) throw new Error(`cannot make ${o.stateDir}/${EMPTY_DIR_NAME}`);
  await writeFile(file, text);
}
