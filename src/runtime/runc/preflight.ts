/**
 * Can acetate run containers here? Each failure is a RuntimeUnavailableError whose message says how
 * to fix it in one line.
 */
import { access, constants, readFile } from 'node:fs/promises';
import { exec } from '../../util/exec.js';
import { findBinary } from '../../util/find-binary.js';
import { RuntimeUnavailableError } from '../runtime.js';

export interface PreflightOptions {
  runcPath?: string;
  conmonPath?: string;
  /** For tests: the effective uid to check (default process.geteuid()). */
  uid?: number;
  /** For tests: /proc/filesystems contents. */
  filesystems?: string;
}

export interface PreflightResult {
  runcPath: string;
  conmonPath: string;
}

async function overlaySupported(filesystems?: string): Promise<boolean> {
  const read = async () => filesystems ?? (await readFile('/proc/filesystems', 'utf8').catch(() => ''));
  const has = (text: string) => /\boverlay$/m.test(text);
  if (has(await read())) return true;
  if (filesystems !== undefined) return false;
  // The module may simply not be loaded yet.
  await exec('modprobe', ['overlay'], { timeoutMs: 10_000 }).catch(() => undefined);
  return has(await read());
}

export async function preflight(opts: PreflightOptions = {}): Promise<PreflightResult> {
  const uid = opts.uid ?? process.geteuid?.() ?? 0;
  if (uid !== 0) throw new RuntimeUnavailableError('acetate needs root: run it with sudo (or as root)');
  const runcPath = await findBinary(opts.runcPath ?? 'runc');
  if (!runcPath) {
    const what = opts.runcPath && opts.runcPath !== 'runc' ? `runc not found at ${opts.runcPath}` : 'runc not found';
    throw new RuntimeUnavailableError(`${what}: install it with \`apt-get install -y runc conmon\``);
  }
  const conmonPath = await findBinary(opts.conmonPath ?? 'conmon');
  if (!conmonPath) {
    const what = opts.conmonPath && opts.conmonPath !== 'conmon' ? `conmon not found at ${opts.conmonPath}` : 'conmon not found';
    throw new RuntimeUnavailableError(`${what}: install it with \`apt-get install -y runc conmon\``);
  }
  if (!(await overlaySupported(opts.filesystems))) {
    throw new RuntimeUnavailableError('the kernel does not support overlayfs: load it with `modprobe overlay` (or use a kernel with CONFIG_OVERLAY_FS)');
  }
  const cgroupsOk = await access('/sys/fs/cgroup', constants.R_OK).then(
    () => true,
    () => false,
  );
  if (!cgroupsOk) throw new RuntimeUnavailableError('cgroups are not mounted at /sys/fs/cgroup: mount them (systemd does this at boot)');
  return { runcPath, conmonPath };
}
