/** Small readers of the image store (pure helpers and files of unpacked layers or archives). */
import { lstat } from 'node:fs/promises';
import { exec } from '../util/exec.js';
import type { ImageProcessConfig } from './process.js';

export function pick(c: ImageProcessConfig): ImageProcessConfig {
  const out: ImageProcessConfig = {};
  if (c.Entrypoint) out.Entrypoint = c.Entrypoint;
  if (c.Cmd) out.Cmd = c.Cmd;
  if (c.Env) out.Env = c.Env;
  if (c.WorkingDir) out.WorkingDir = c.WorkingDir;
  if (c.User) out.User = c.User;
  return out;
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** The name a `docker save` (RepoTags) or OCI archive (ref.name annotation) carries, if any. */
export async function archiveName(file: string, transport: 'docker-archive' | 'oci-archive'): Promise<string | undefined> {
  const member = transport === 'docker-archive' ? 'manifest.json' : 'index.json';
  const text = await exec('tar', ['-xOf', file, member]).then(
    (r) => r.stdout,
    () =>
      exec('tar', ['-xOf', file, `./${member}`]).then(
        (r) => r.stdout,
        () => '',
      ),
  );
  try {
    if (transport === 'docker-archive') return (JSON.parse(text) as { RepoTags?: string[] }[])[0]?.RepoTags?.[0];
    const ann = (JSON.parse(text) as { manifests?: { annotations?: Record<string, string> }[] }).manifests?.[0]?.annotations?.[
      'org.opencontainers.image.ref.name'
    ];
    return ann && /[/:]/.test(ann) ? ann : undefined;
  } catch {
    return undefined;
  }
}
