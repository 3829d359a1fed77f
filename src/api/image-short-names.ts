/**
 * Short-name aliases of registries.conf (containers-registries.conf(5), `[aliases]`), applied by
 * acetate itself: skopeo's `docker://` transport never resolves short names (it always completes
 * them with docker.io), so a short name would otherwise ignore the node's aliases.
 *
 * Where aliases come from, later wins (the registries.conf rules, then acetate's override):
 *   1. /etc/containers/registries.conf
 *   2. /etc/containers/registries.conf.d/*.conf in lexical order
 *   3. $ACETATE_REGISTRIES_CONF when set (the node's override file; tests use it)
 * A short name with no alias falls back to docker.io (Kubernetes' rule; no
 * unqualified-search-registries, so a manifest never means "whichever registry answers first").
 *
 * A minimal reader of the `[aliases]` table (`"name" = "registry/repo"` lines), not a TOML parser:
 * the rest of the file is left to skopeo.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ImageReferenceError, parseReference } from './image-reference.js';

export const NODE_REGISTRIES_CONF = '/etc/containers/registries.conf';
export const NODE_REGISTRIES_CONF_D = '/etc/containers/registries.conf.d';

/** `name → registry/repo` from one file's `[aliases]` table. Pure; throws naming file and line. */
export function parseAliases(text: string, file = 'registries.conf'): Map<string, string> {
  const out = new Map<string, string>();
  let inAliases = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (!line || line.startsWith('#')) return;
    if (line.startsWith('[')) {
      inAliases = /^\[\s*aliases\s*\]$/.test(line.replace(/\s*#.*$/, ''));
      return;
    }
    if (!inAliases) return;
    const m = /^(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9._/-]+))\s*=\s*(?:"([^"]*)"|'([^']*)')\s*(?:#.*)?$/.exec(line);
    if (!m) throw new ImageReferenceError(`${file}:${i + 1}: [aliases]: expected "short-name" = "registry/repository"`);
    const name = (m[1] ?? m[2] ?? m[3])!;
    const value = (m[4] ?? m[5])!;
    if (!isShortName(name)) throw new ImageReferenceError(`${file}:${i + 1}: [aliases]: '${name}' is not a short name (it names a registry)`);
    if (!isShortName(value) && !/[:@]/.test(value.slice(value.indexOf('/')))) {
      out.set(name, value);
    } else {
      throw new ImageReferenceError(`${file}:${i + 1}: [aliases]: '${value}' must be a fully qualified repository (registry/path) without a tag or digest`);
    }
  });
  return out;
}

/** Whether a reference names no registry (its first component has no '.', ':' and is not localhost). */
export function isShortName(input: string): boolean {
  const s = input.trim();
  const slash = s.indexOf('/');
  if (slash < 0) return true;
  const first = s.slice(0, slash);
  return !(first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['));
}

/**
 * A short name completed through `aliases` (its tag or digest kept); anything else unchanged.
 * Pure. `myapp:1` with `myapp = 127.0.0.1:5000/team/myapp` → `127.0.0.1:5000/team/myapp:1`.
 */
export function resolveShortName(input: string, aliases: ReadonlyMap<string, string>): string {
  const s = input.trim();
  if (!isShortName(s)) return s;
  const at = s.indexOf('@');
  const named = at >= 0 ? s.slice(0, at) : s;
  const colon = named.lastIndexOf(':');
  const name = colon > named.lastIndexOf('/') ? named.slice(0, colon) : named;
  const target = aliases.get(name);
  if (!target) return s;
  return target + s.slice(name.length);
}

/** The files aliases are read from, in order (later wins). */
export function registriesConfFiles(override: string | undefined, confD = NODE_REGISTRIES_CONF_D, main = NODE_REGISTRIES_CONF): string[] {
  let dropIns: string[] = [];
  try {
    dropIns = readdirSync(confD)
      .filter((f) => f.endsWith('.conf'))
      .sort()
      .map((f) => path.join(confD, f));
  } catch {
    // no drop-in dir
  }
  return [main, ...dropIns, ...(override ? [override] : [])];
}

let cache: { key: string; aliases: Map<string, string> } | undefined;

/**
 * The merged aliases of the node's files and `override`. Re-read only when a file's mtime or size
 * changes (normalize runs it for every manifest on every pass).
 */
export function nodeAliases(override: string | undefined = process.env.ACETATE_REGISTRIES_CONF): Map<string, string> {
  const files = registriesConfFiles(override);
  const key = files
    .map((f) => {
      try {
        const st = statSync(f);
        return `${f}:${st.mtimeMs}:${st.size}`;
      } catch {
        return `${f}:-`;
      }
    })
    .join('|');
  if (cache?.key === key) return cache.aliases;
  const aliases = new Map<string, string>();
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue; // a missing file has no aliases
    }
    for (const [k, v] of parseAliases(text, f)) aliases.set(k, v);
  }
  cache = { key, aliases };
  return aliases;
}

/** A user's reference with the node's aliases applied, then validated. What normalize and the CLI use. */
export function qualifyImage(input: string, override?: string): string {
  const resolved = resolveShortName(input, nodeAliases(override ?? process.env.ACETATE_REGISTRIES_CONF));
  parseReference(resolved);
  return resolved;
}
