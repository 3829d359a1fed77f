/**
 * Image references, normalized the way Docker, Kubernetes and containers/image do
 * (distribution/reference's ParseNormalizedNamed): `busybox` → `docker.io/library/busybox:latest`,
 * `registry:5000/team/app@sha256:…` stays as it is. Pure.
 *
 * Short names are completed with docker.io, as Kubernetes and Docker do. registries.conf's
 * short-name aliases are applied before this, by image-short-names.ts; unqualified-search-registries (a
 * Podman feature) are not consulted, so a manifest means the same image on every node.
 */

export type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface ImageReference {
  /** Registry host (with port), e.g. `docker.io`, `127.0.0.1:5000`. */
  domain: string;
  /** Repository path within the registry, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  /** `sha256:<64 hex>`. */
  digest?: string;
}

export class ImageReferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageReferenceError';
  }
}

const DEFAULT_DOMAIN = 'docker.io';
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/** Parses and normalizes a reference; throws an ImageReferenceError saying what is wrong. */
export function parseReference(input: string): ImageReference {
  const s = input.trim();
  if (!s) throw new ImageReferenceError('image reference is empty');
  if (s.length > 1024) throw new ImageReferenceError('image reference is longer than 1024 characters');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new ImageReferenceError(`'${digest}' is not a digest such as sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ImageReferenceError(`'${tag}' is not a valid tag`);
  }
  const parts = rest.split('/');
  let domain = DEFAULT_DOMAIN;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    domain = first;
    parts.shift();
    if (!DOMAIN.test(domain)) throw new ImageReferenceError(`'${domain}' is not a valid registry host`);
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) throw new ImageReferenceError(`'${p}' is not a valid repository name component (lowercase letters, digits, '.', '_', '-')`);
  }
  const ref: ImageReference = { domain, path: parts.join('/') };
  // distribution/reference's NameTotalLengthMax: Docker, containerd and registries refuse longer names.
  if (repositoryOf(ref).length > 255) throw new ImageReferenceError(`the repository name is ${repositoryOf(ref).length} characters long, more than 255`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `docker.io/library/busybox` */
export function repositoryOf(r: ImageReference): string {
  return `${r.domain}/${r.path}`;
}

/** The canonical form: `docker.io/library/busybox:1.36`, `host/repo@sha256:…`, or both. */
export function formatReference(r: ImageReference): string {
  return `${repositoryOf(r)}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** Canonical form of a reference string (throws if it is invalid). */
export function normalizeReference(input: string): string {
  return formatReference(parseReference(input));
}

/**
 * What a registry is asked for: with a digest the tag is dropped (`repo:tag@sha256:…` means the
 * digest, as Docker, containerd and Podman take it; skopeo refuses both together).
 */
export function transportReference(r: ImageReference): string {
  return r.digest !== undefined ? pinnedReference(r, r.digest) : formatReference(r);
}

/** The reference pinned to a digest: `repo@sha256:…` (what is pulled, so a moving tag cannot race). */
export function pinnedReference(r: ImageReference, digest: string): string {
  return `${repositoryOf(r)}@${digest}`;
}

/**
 * Kubernetes' default: Always when the tag is `latest` (written or implied) and no digest is
 * given, IfNotPresent otherwise.
 */
export function defaultPullPolicy(r: ImageReference): ImagePullPolicy {
  return r.digest === undefined && r.tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** `sha256:abcdef012345…` shortened for plans and tables: `sha256:abcdef012345`. */
export function shortDigest(d: string | undefined): string {
  if (!d) return '-';
  return d.startsWith('sha256:') ? d.slice(0, 19) : d.slice(0, 12);
}
