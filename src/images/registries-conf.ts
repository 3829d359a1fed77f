/**
 * Which registries registries.conf marks `insecure` (plain HTTP or unverified TLS).
 *
 * skopeo reads /etc/containers/registries.conf and its drop-ins itself (mirrors, blocked
 * registries, insecure), and another file ($ACETATE_REGISTRIES_CONF) as its per-user file (see
 * skopeo.ts `registriesConf`). acetate also reads that file's `insecure` entries here and passes
 * `--tls-verify=false` for those registries (belt and braces for the plain-HTTP test registry). A minimal reader of the v2 format's
 * `[[registry]]` tables (location / prefix, insecure), not a TOML parser.
 */
import { readFileSync } from 'node:fs';

export function insecureRegistries(text: string): string[] {
  const out: string[] = [];
  let current: { location?: string; prefix?: string; insecure?: boolean } | undefined;
  const flush = () => {
    const where = current?.prefix ?? current?.location;
    if (current?.insecure && where) out.push(where);
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    if (line.startsWith('[')) {
      flush();
      current = line === '[[registry]]' ? {} : undefined;
      continue;
    }
    const m = /^([A-Za-z-]+)\s*=\s*(.+)$/.exec(line);
    if (!current || !m) continue;
    const value = m[2]!.trim();
    if (m[1] === 'location' || m[1] === 'prefix') current[m[1]] = value.replace(/^["']|["']$/g, '');
    if (m[1] === 'insecure') current.insecure = value === 'true';
  }
  flush();
  return out;
}

/** Whether `repository` (`host[:port]/path`) falls under an insecure entry of the file. */
export function isInsecure(file: string, repository: string): boolean {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return false;
  }
  return insecureRegistries(text).some((loc) => repository === loc || repository.startsWith(`${loc}/`));
}
