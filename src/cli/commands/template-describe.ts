/** `acetate template describe NAME`: what a template is; for `host`, what it shows and hides on this node, and why. */
import type { CliContext } from '../command.js';
import { print, UsageError } from '../command.js';
import { table } from '../table.js';
import { HOST_TEMPLATE } from '../../runtime/runc/templates.js';
import { RuncRuntime } from '../../runtime/runc/runc-runtime.js';
import { instancePaths } from '../../runtime/runc/paths.js';
import { hostViewOf } from '../../runtime/walls/walls.js';
import { isolationSettingsFromEnv } from '../../runtime/walls/settings.js';
import { hostOsIds } from '../../runtime/walls/host-ids.js';
import type { ViewAction } from '../../runtime/walls/host-masks.js';

const HOW: Record<ViewAction['kind'], string> = {
  absent: 'absent',
  empty: 'empty',
  'locked-copy': 'own copy, locked',
  'machine-id': 'own',
  symlink: 'own link',
};

export async function describeTemplate(name: string, output: string, ctx: CliContext): Promise<number> {
  const { runtime, templates } = await ctx.openRuntime();
  const info = (await templates.list()).find((t) => t.name === name);
  if (!info) throw new UsageError(`template '${name}' is not installed on this node`);
  if (name !== HOST_TEMPLATE) {
    if (output === 'json') print(ctx.stdout, JSON.stringify(info, null, 2));
    else
      print(
        ctx.stdout,
        `Name: ${info.name}\nPath: ${info.path}\nSource: ${info.source ?? '-'}\nImported: ${info.importedAt ?? '-'}\nSize: ${info.sizeBytes ?? '-'} bytes`,
      );
    return 0;
  }
  const paths = runtime instanceof RuncRuntime ? runtime.paths : instancePaths(ctx.stateDir);
  const settings = isolationSettingsFromEnv(process.env);
  const view = await hostViewOf({ paths, settings, hostRoot: templates.hostRoot });
  const ids = await hostOsIds(templates.hostRoot, settings.hostIds);
  if (output === 'json') {
    print(ctx.stdout, JSON.stringify({ ...info, shown: view.shown, hidden: view.entries, private: view.tmpfs, userNamespaceIds: ids }, null, 2));
    return 0;
  }
  print(
    ctx.stdout,
    `Name: host\nPath: ${info.path} (the node's root filesystem, read-only lower layer)\n` +
      `Shows the node's operating system, not its data. In /, /var: the FHS' OS dirs. In /var/lib, /var/cache, /opt, /usr/local: what an installed package owns (dpkg's file lists; a fixed list without dpkg), owned by root and readable by every user; inside those, again only what a package installed, except the package managers' own state (dpkg, apt, debconf, …: shown whole). In /etc at any depth: what only its owner may read is absent. Every acetate instance's state and run dir: absent. /home, /root, /srv, /mnt, /media, /tmp, /var/tmp, /var/log, /var/spool, /var/mail, /var/backups, /var/local, /var/opt: empty. Anything else there: absent.\n` +
      `absent / empty: overlayfs markers in the container's private area (what it writes there is its own); own: the container's (machine-id made once per container); private: a tmpfs of its own.\n` +
      `In a user namespace the node's files are seen with only the OS' owners mapped (users ${ids.uids}; groups ${ids.gids}: Debian's static system ids, nobody, dpkg-statoverride's, ACETATE_HOST_IDS): files of any other owner (services' and people's data) are nobody's, closed to the container's root.\n` +
      `What the node makes in these places after a container started is hidden in it within moments while \`acetate run\` runs (inotify); with \`apply\` alone, at its next start.\n` +
      `Adjust per node: ACETATE_HOST_HIDE=/a:/b (hide more), ACETATE_HOST_SHOW=/srv:/opt/app (show), ACETATE_HOST_IDS=1000,2000-2010 (map more owners).\n`,
  );
  const rows = [
    ...view.shown.map((s) => [s.path, 'shown', s.source, s.why]),
    ...view.tmpfs.map((t) => [t.path, 'private', 'default', t.why]),
    ...view.entries.map((e) => [e.path, HOW[e.action.kind], e.source, e.why]),
  ].sort((a, b) => a[0]!.localeCompare(b[0]!));
  ctx.stdout.write(table(['PATH', 'SHOWN AS', 'SOURCE', 'WHY'], rows));
  return 0;
}
