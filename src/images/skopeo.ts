/**
 * The registry transport: skopeo (containers/image, the library of Podman, CRI-O and Buildah),
 * rather than a registry client of our own. It honours registries.conf and its drop-ins (mirrors
 * with `pull-from-mirror`, `insecure`, blocked registries; another file: see `registriesConf`), the usual auth files (${XDG_RUNTIME_DIR}/containers/auth.json,
 * ~/.docker/config.json, $REGISTRY_AUTH_FILE), the signature policy (/etc/containers/policy.json),
 * and verifies every blob it fetches against its digest.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec, ExecError } from '../util/exec.js';
import { pidExists } from '../util/processes.js';
import { ImagePullError, RegistryTimeoutError } from './errors.js';
import { isInsecure } from './registries-conf.js';
import { parseReference, transportReference } from '../api/image-reference.js';

export const PLATFORM = { os: 'linux', architecture: 'amd64' } as const;
const POLICY = '/etc/containers/policy.json';

export interface SkopeoOptions {
  binary?: string;
  /**
   * A registries.conf to use instead of the node's (mirrors, insecure, blocked). skopeo 1.9 has no
   * flag for it and ignores $CONTAINERS_REGISTRIES_CONF, but it reads the per-user file
   * `$HOME/.config/containers/registries.conf` (for root too) in place of the node's file and
   * drop-ins: so skopeo runs with HOME=`homeDir`, where that file is a symlink to this one.
   */
  registriesConf?: string;
  /** The HOME skopeo runs with when `registriesConf` is set (default: a dir beside tmpDir). */
  homeDir?: string;
  /**
   * A process that must write nothing in the state dir (`plan`, `get`: they do not hold the node
   * lock): it uses `homeDir` only when that is already as needed, else a private HOME in the
   * system's temporary dir, removed when the process exits.
   */
  readOnly?: () => boolean;
  /** An auth file (`--authfile`); otherwise skopeo's defaults. */
  authFile?: string;
  /** Where skopeo keeps temporary files (e.g. an archive being imported). */
  tmpDir?: string;
  /** A whole copy (download and unpack of every layer) at most. Default 10 minutes. */
  copyTimeoutMs?: number;
  /**
   * The registry time limit (`--registry-timeout`, ACETATE_REGISTRY_TIMEOUT): a manifest lookup
   * that takes longer, or a download that receives no byte for this long, is killed and fails with
   * a RegistryTimeoutError naming the registry. Default 30 s.
   */
  registryTimeoutMs?: number;
}

/** What a copy reports while it runs, polled every second (see pull-progress.ts). */
export interface CopyWatch {
  /** Bytes received so far: a download that receives none for the registry time limit is killed. */
  sample(): Promise<number>;
}

export const DEFAULT_REGISTRY_TIMEOUT_MS = 30_000;
const WATCH_MS = 1000;

interface Descriptor {
  mediaType?: string;
  digest: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/**
 * The digest of the linux/amd64 image manifest a raw manifest names: its own digest when it is an
 * image manifest, the matching entry's when it is an index (multi-arch). Pure.
 */
export function platformDigest(raw: string, source: string, requested?: string): string {
  const own = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  // `skopeo inspect --raw` does not check what the registry returned against the digest asked
  // for (containers/image verifies only in copy): a pin names content, so the bytes decide.
  if (requested !== undefined && own !== requested) {
    throw new ImagePullError(
      `${source}: the registry answered for ${requested} with a manifest whose digest is ${own}; refused (a digest names exactly one content)`,
    );
  }
  let m: { mediaType?: string; manifests?: Descriptor[]; schemaVersion?: number };
  try {
    m = JSON.parse(raw) as typeof m;
  } catch (err) {
    throw new ImagePullError(`${source}: the registry's manifest is not JSON`, 'ErrImagePull', { cause: err });
  }
  const isIndex = (m.mediaType !== undefined && INDEX_TYPES.has(m.mediaType)) || (m.mediaType === undefined && Array.isArray(m.manifests));
  if (!isIndex) {
    if (m.schemaVersion === 1) throw new ImagePullError(`${source}: Docker schema 1 manifests are not supported; push the image again with a current client`);
    return own;
  }
  const match = (m.manifests ?? []).find((d) => d.platform?.os === PLATFORM.os && d.platform?.architecture === PLATFORM.architecture);
  if (!match) {
    const all = (m.manifests ?? []).map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`);
    // An index may list thousands of entries: the first few name the problem.
    const have = all.slice(0, 20).join(', ') + (all.length > 20 ? `, and ${all.length - 20} more` : '');
    throw new ImagePullError(`${source}: no ${PLATFORM.os}/${PLATFORM.architecture} image in the index (it has ${have || 'none'})`);
  }
  return match.digest;
}

/** The registry's own words from a failed skopeo run (its last error line), without the command line. */
export function skopeoMessage(err: unknown): string {
  if (err instanceof ExecError) {
    if (err.signal === 'SIGKILL' && !err.stderr) return 'timed out';
    const lines = (err.stderr || err.stdout).trim().split('\n').filter(Boolean);
    const last = lines[lines.length - 1] ?? `exit code ${err.exitCode}`;
    return last
      .replace(/^time="[^"]*" level=\w+ msg="(.*)"$/, '$1')
      .replace(/\\"/g, '"')
      .replace(/^Error: /, '')
      .replace(/^Error parsing image name "[^"]*": /, '');
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A HOME for skopeo whose per-user registries.conf is `conf` (a symlink: edits apply at once).
 * The user's auth files, signature policy and registries.d are linked in too, so changing HOME
 * does not lose ~/.docker/config.json, ~/.config/containers/{auth,policy}.json. Symlinks are replaced by rename, so concurrent CLI processes
 * may prepare it at once.
 */
/** The links HOME must hold for skopeo to read `conf` and the user's own files: [target, at]. */
function homeLinks(home: string, conf: string): [string, string][] {
  const realHome = os.homedir();
  const user = (f: string): [string, string] => [path.join(realHome, '.config', 'containers', f), path.join(home, '.config', 'containers', f)];
  return [
    [path.resolve(conf), path.join(home, '.config', 'containers', 'registries.conf')],
    // The user's own files skopeo looks for under HOME (a dangling link counts as absent).
    user('auth.json'),
    user('policy.json'),
    user('registries.d'),
    [path.join(realHome, '.docker'), path.join(home, '.docker')],
    [path.join(realHome, '.dockercfg'), path.join(home, '.dockercfg')],
  ];
}

function linkedAs(at: string, target: string): boolean {
  try {
    return readlinkSync(at) === target;
  } catch {
    return false;
  }
}

/** Whether home already holds every link for conf (then nothing needs writing). */
export function homeIsReady(home: string, conf: string): boolean {
  return homeLinks(home, conf).every(([target, at]) => linkedAs(at, target));
}

/** Makes home hold the links for conf; a link already right is left untouched. */
export function prepareHome(home: string, conf: string): string {
  for (const [target, at] of homeLinks(home, conf)) {
    if (linkedAs(at, target)) continue;
    mkdirSync(path.dirname(at), { recursive: true, mode: 0o700 });
    const tmp = `${at}.${process.pid}.tmp`;
    rmSync(tmp, { force: true }); // left by a killed process whose pid this one reuses
    symlinkSync(target, tmp);
    renameSync(tmp, at);
  }
  return home;
}

/**
 * A private HOME for a read-only process, removed when it exits. A process killed by a signal
 * cannot remove its own: the next one removes those whose process is gone (the pid is in the name).
 */
function privateHome(conf: string): string {
  const prefix = 'acetate-skopeo-home-';
  for (const name of readdirSync(os.tmpdir())) {
    const pid = Number(/^acetate-skopeo-home-(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== process.pid && !pidExists(pid)) rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
  const home = mkdtempSync(path.join(os.tmpdir(), `${prefix}${process.pid}-`));
  process.once('exit', () => rmSync(home, { recursive: true, force: true }));
  return prepareHome(home, conf);
}

export class Skopeo {
  constructor(private readonly opts: SkopeoOptions = {}) {}

  /** Every skopeo child in flight: killed by abortAll (SIGTERM of `acetate run`). */
  private readonly inFlight = new Set<AbortController>();
  private closed: string | undefined;

  get registryTimeoutMs(): number {
    return this.opts.registryTimeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS;
  }

  /**
   * Kills every skopeo child in flight and refuses new ones: a registry that hangs must not hold
   * a shutdown (their callers fail with `why`).
   */
  abortAll(why: string): void {
    this.closed = why;
    for (const c of this.inFlight) c.abort();
  }

  /**
   * Runs skopeo under the registry time limit: `registry` is the one asked. Without `watch` the
   * limit bounds the whole run (a manifest lookup); with it, the time without a new byte (a
   * download), polled every second.
   */
  private async run(args: string[], o: { what: string; registry?: string; watch?: CopyWatch; totalMs: number }): Promise<string> {
    if (this.closed) throw new ImagePullError(`${o.what}: ${this.closed}`);
    const abort = new AbortController();
    this.inFlight.add(abort);
    const limit = this.registryTimeoutMs;
    let expired: RegistryTimeoutError | undefined;
    const expire = (what: string): void => {
      expired = new RegistryTimeoutError(o.registry!, limit, what);
      abort.abort();
    };
    let timer: NodeJS.Timeout | undefined;
    if (o.registry !== undefined && !o.watch) timer = setTimeout(() => expire('did not answer'), limit);
    if (o.registry !== undefined && o.watch) {
      const watch = o.watch;
      let last = -1;
      let lastChange = Date.now();
      let sampling = false;
      timer = setInterval(() => {
        if (sampling) return;
        sampling = true;
        watch
          .sample()
          .then((n) => {
            if (n !== last) [last, lastChange] = [n, Date.now()];
            else if (Date.now() - lastChange >= limit) expire('sent no data');
          })
          .catch(() => undefined)
          .finally(() => (sampling = false));
      }, WATCH_MS);
    }
    try {
      const r = await exec(this.opts.binary ?? 'skopeo', args, { env: this.env(), timeoutMs: o.totalMs, signal: abort.signal });
      return r.stdout;
    } catch (err) {
      if (expired) throw new ImagePullError(`${o.what}: ${expired.message}`, 'ErrImagePull', { cause: expired });
      if (abort.signal.aborted && this.closed) throw new ImagePullError(`${o.what}: ${this.closed}`, 'ErrImagePull', { cause: err });
      throw new ImagePullError(`${o.what}: ${skopeoMessage(err)}`, 'ErrImagePull', { cause: err });
    } finally {
      clearTimeout(timer);
      clearInterval(timer);
      this.inFlight.delete(abort);
    }
  }

  private home: string | undefined;

  private env(): NodeJS.ProcessEnv {
    if (!this.opts.registriesConf) return process.env;
    const conf = this.opts.registriesConf;
    const shared = this.opts.homeDir ?? path.join(this.opts.tmpDir ?? os.tmpdir(), '..', 'skopeo-home');
    this.home ??= !this.opts.readOnly?.() ? prepareHome(shared, conf) : homeIsReady(shared, conf) ? shared : privateHome(conf);
    // CONTAINERS_REGISTRIES_CONF for skopeo versions that honour it (newer than 1.9).
    return { ...process.env, HOME: this.home, CONTAINERS_REGISTRIES_CONF: path.resolve(this.opts.registriesConf) };
  }

  /** `--tls-verify=false` for a registry another registries.conf marks insecure (see registries-conf.ts). */
  private tlsArgs(flag: string, ref: string): string[] {
    return this.opts.registriesConf && isInsecure(this.opts.registriesConf, ref) ? [`${flag}=false`] : [];
  }

  private globalArgs(): string[] {
    return [
      ...(existsSync(POLICY) ? [] : ['--insecure-policy']), // no policy file on this node: nothing to enforce
      ...(this.opts.tmpDir ? ['--tmpdir', this.opts.tmpDir] : []),
      '--override-os',
      PLATFORM.os,
      '--override-arch',
      PLATFORM.architecture,
    ];
  }

  private authArgs(flag: string): string[] {
    return this.opts.authFile ? [flag, this.opts.authFile] : [];
  }

  /** The registry's raw manifest (index or image) of `docker://REF`, under the registry time limit. */
  rawManifest(ref: string): Promise<string> {
    return this.run(
      [...this.globalArgs(), 'inspect', '--raw', '--retry-times', '2', ...this.authArgs('--authfile'), ...this.tlsArgs('--tls-verify', ref), `docker://${ref}`],
      { what: ref, registry: registryOf(ref), totalMs: this.registryTimeoutMs + 5000 }, // the registry limit, not exec's, words the failure
    );
  }

  /**
   * The linux/amd64 image manifest digest `REF` names now (one registry round trip, nothing
   * written). A reference with a digest is asked for by that digest alone (a tag beside it is
   * ignored, as Docker does) and the answer must hash to it.
   */
  async resolveDigest(ref: string): Promise<string> {
    const r = parseReference(ref);
    return platformDigest(await this.rawManifest(transportReference(r)), ref, r.digest);
  }

  /**
   * Copies an image into an OCI layout whose blobs go to a shared, content-addressed blob dir. A
   * download (`docker://`) that receives nothing for the registry time limit is killed (`watch`
   * says how much arrived).
   */
  async copyToLayout(source: string, layoutDir: string, sharedBlobDir: string, what: string, watch?: CopyWatch): Promise<void> {
    const remote = source.startsWith('docker://');
    const auth = remote ? [...this.authArgs('--src-authfile'), ...this.tlsArgs('--src-tls-verify', source.slice('docker://'.length))] : [];
    await this.run(
      [...this.globalArgs(), 'copy', '--quiet', '--retry-times', '2', ...auth, '--dest-shared-blob-dir', sharedBlobDir, source, `oci:${layoutDir}:image`],
      {
        what,
        // Without a watch only the whole copy is bounded: a slow but moving download is not a hang.
        ...(remote && watch ? { registry: registryOf(source.slice('docker://'.length)), watch } : {}),
        totalMs: this.opts.copyTimeoutMs ?? 600_000,
      },
    );
  }
}

/** The registry host a reference asks (`127.0.0.1:5000`, `docker.io`). */
function registryOf(ref: string): string {
  try {
    return parseReference(ref).domain;
  } catch {
    return ref.split('/')[0] ?? ref;
  }
}
