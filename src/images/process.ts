/**
 * The process of a container made from an image, the way Kubernetes combines a Pod's container
 * with its image's config (kubelet's kuberuntime, Docker's rules). Pure.
 *
 * - `command` replaces the image's Entrypoint, and then the image's Cmd is ignored too;
 * - `args` replaces the image's Cmd;
 * - env: the image's Env first, the manifest's entries override by name;
 * - workingDir: the manifest's, else the image's WorkingDir, else `/`;
 * - user: the image's User (`uid`, `uid:gid`, `name`, `name:group`, resolved against the image's
 *   /etc/passwd and /etc/group by the caller).
 */
import { InvalidError } from '../contracts/errors.js';

/** The parts of an OCI image config (`config` object) that shape the process. */
export interface ImageProcessConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
}

export interface ProcessSpecInput {
  command: string[];
  args: string[];
  env: { name: string; value: string }[];
  /** '' = not given. */
  workingDir: string;
}

export interface EffectiveProcess {
  args: string[];
  env: { name: string; value: string }[];
  cwd: string;
}

/** The image and the manifest together give no process that can run (terminal until either changes). */
export class ImageProcessError extends InvalidError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageProcessError';
  }
}

/**
 * An image's config is untrusted: a NUL byte cannot pass to execve or runc's JSON as the image
 * meant it, so it is refused here, naming the field, rather than reaching runc raw.
 */
function refuseNul(image: ImageProcessConfig): void {
  const fields: [string, unknown][] = [
    ['Entrypoint', image.Entrypoint],
    ['Cmd', image.Cmd],
    ['Env', image.Env],
    ['WorkingDir', image.WorkingDir],
    ['User', image.User],
  ];
  for (const [name, v] of fields) {
    const values = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    const i = values.findIndex((x) => typeof x !== 'string' || x.includes('\0'));
    if (i >= 0)
      throw new ImageProcessError(
        `the image's ${name}${Array.isArray(v) ? `[${i}]` : ''} ${typeof values[i] === 'string' ? 'holds a NUL byte' : 'is not a string'}`,
      );
  }
}

export function effectiveProcess(spec: ProcessSpecInput, image: ImageProcessConfig): EffectiveProcess {
  refuseNul(image);
  const entrypoint = spec.command.length > 0 ? spec.command : (image.Entrypoint ?? []);
  // Kubernetes: with a command and no args, the image's Cmd is not used.
  const cmd = spec.args.length > 0 ? spec.args : spec.command.length > 0 ? [] : (image.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new ImageProcessError('the image has neither Entrypoint nor Cmd and the manifest gives no command: nothing to run');
  const env = new Map<string, string>();
  for (const kv of image.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const e of spec.env) env.set(e.name, e.value);
  const cwd = spec.workingDir || image.WorkingDir || '/';
  if (!cwd.startsWith('/')) throw new ImageProcessError(`the image's WorkingDir '${cwd}' is not absolute`);
  return { args, env: [...env].map(([name, value]) => ({ name, value })), cwd };
}

/**
 * uid and gid of an image's User. Names are looked up in the image's passwd and group files
 * (their text, or undefined when the image has none); numbers need no lookup.
 */
export function resolveUser(user: string | undefined, files: { passwd?: string; group?: string }): { uid: number; gid: number } {
  if (!user) return { uid: 0, gid: 0 };
  if (user.includes('\0')) throw new ImageProcessError("the image's User holds a NUL byte");
  const ids = resolveNames(user, files);
  for (const [what, v] of [['uid', ids.uid] as const, ['gid', ids.gid] as const]) {
    // Linux ids are 32-bit and (uid_t)-1 means "no change": what passwd or the config says beyond is refused, not wrapped.
    if (!Number.isSafeInteger(v) || v < 0 || v > MAX_ID)
      throw new ImageProcessError(`the image's User '${user.slice(0, 64)}': ${what} ${v} is not between 0 and ${MAX_ID}`);
  }
  return ids;
}

const MAX_ID = 4294967294;

function resolveNames(user: string, files: { passwd?: string; group?: string }): { uid: number; gid: number } {
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  const passwd = parseColonFile(files.passwd);
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const entry = passwd.find((p) => p[2] === u);
    if (entry && /^\d+$/.test(entry[3] ?? '')) gid = Number(entry[3]);
  } else {
    const entry = passwd.find((p) => p[0] === u);
    if (!entry) throw new ImageProcessError(`the image's User '${user}': no user '${u}' in the image's /etc/passwd`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const entry = parseColonFile(files.group).find((p) => p[0] === g);
      if (!entry) throw new ImageProcessError(`the image's User '${user}': no group '${g}' in the image's /etc/group`);
      gid = Number(entry[2]);
    }
  }
  return { uid, gid: gid ?? 0 };
}

function parseColonFile(text: string | undefined): string[][] {
  if (!text) return [];
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}
