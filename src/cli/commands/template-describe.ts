/** `acetate template describe NAME`: what a template is; for `host`, what it hides on this node. */
import type { CliContext } from '../command.js';
import { print, UsageError } from '../command.js';
import { table } from '../table.js';
import { HOST_TEMPLATE } from '../../runtime/runc/templates.js';
import { hostMaskRules, resolveHostMasks } from '../../runtime/walls/host-masks.js';
import { RuncRuntime } from '../../runtime/runc/runc-runtime.js';
import { instancePaths } from '../../runtime/runc/paths.js';
import { hostIsolationOptions } from '../../runtime/walls/walls.js';
import { isolationSettingsFromEnv } from '../../runtime/walls/settings.js';

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
  const masks = await resolveHostMasks(hostMaskRules(hostIsolationOptions({ paths, settings })), templates.hostRoot);
  if (output === 'json') {
    print(ctx.stdout, JSON.stringify({ ...info, hidden: masks }, null, 2));
    return 0;
  }
  print(
    ctx.stdout,
    `Name: host\nPath: ${info.path} (the node's root filesystem, read-only lower layer)\n` +
      `Shows the node's operating system; hides its data. private = an empty writable tmpfs of the container's own; hidden = an empty read-only tmpfs, or /dev/null for a file.\n` +
      `Adjust per node: ACETATE_HOST_HIDE=/a:/b (hide more), ACETATE_HOST_SHOW=/srv:/home (show a default entry).\n`,
  );
  ctx.stdout.write(
    table(
      ['PATH', 'KIND', 'ON THIS NODE', 'WHY'],
      masks.map((m) => [m.path, m.kind, m.covers.length ? m.covers.map((c) => c.path).join(' ') : '(absent)', m.why]),
    ),
  );
  return 0;
}
