/** A minimal root filesystem for tests and benchmarks: a static busybox and its applets (no network needed). */
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../src/util/exec.js';

export const BUSYBOX = '/usr/bin/busybox';
export const APPLETS = [
  'sh',
  'ash',
  'sleep',
  'echo',
  'cat',
  'ls',
  'httpd',
  'dd',
  'head',
  'tail',
  'mkdir',
  'rm',
  'touch',
  'env',
  'id',
  'ps',
  'kill',
  'true',
  'false',
  'yes',
  'wc',
  'grep',
  'hostname',
  'mount',
  'cp',
  'mv',
  'ln',
  'test',
  '[',
  'printf',
  'seq',
  'wget',
  'nc',
  'ip',
  'ifconfig',
  'date',
  'df',
  'free',
  'top',
  'stat',
  'readlink',
];

/** Populate `dir` (created if needed) with bin/busybox, applet symlinks and the usual mount points. */
export async function makeBusyboxRootfs(dir: string): Promise<string> {
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'root', 'var/www', 'usr/bin']) {
    await mkdir(path.join(dir, d), { recursive: true });
  }
  await chmod(path.join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, path.join(dir, 'bin', 'busybox'));
  await chmod(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) await symlink('busybox', path.join(dir, 'bin', a));
  await writeFile(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(path.join(dir, 'etc', 'group'), 'root:x:0:\n');
  await writeFile(path.join(dir, 'etc', 'os-release'), 'ID=busybox\nNAME="acetate test busybox"\n');
  return dir;
}

/** The same rootfs as a .tar.gz (numeric owners). */
export async function makeBusyboxTarball(workDir: string, tarball: string): Promise<string> {
  const root = await makeBusyboxRootfs(path.join(workDir, 'busybox-rootfs'));
  await exec('tar', ['-c', '-z', '--numeric-owner', '-f', tarball, '-C', root, '.']);
  return tarball;
}
