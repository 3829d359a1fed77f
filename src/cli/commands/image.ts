import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { outputOption, parseSubcommand } from '../args.js';
import { table, age } from '../table.js';
import { shortDigest } from '../../api/image-reference.js';
import { ImageStoreError } from '../../images/errors.js';
import { terminalProgress } from '../pull-progress-view.js';
import type { ActualContainer } from '../../runtime/runtime.js';

const USAGE = `Usage:
  acetate image list [-o json]          images on this node: names, id (digest), layers, size
  acetate image pull REF                resolve REF at its registry now and pull what is missing
                                        (on a terminal: layers and MiB received, every 2 s)
  acetate image import FILE [NAME]      an image from a \`docker save\` or OCI archive (offline)
  acetate image rm REF|ID...            remove images (refused while a container uses one)
  acetate image prune [--all]           delete layers and blobs no image uses; --all: also images no container uses

Images are stored once per node under <state-dir>/images, content-addressed; each layer is
unpacked once and shared by every container of every image that has it. rm and prune run beside
\`acetate run\`: they wait (up to 60 s) for the containers being created from images and the
pulls in progress, never for run itself.`;

/** What rm and prune say when they wait for the images lock. */
function waiting(ctx: { stderr: Writable }): (file: string) => void {
  return (file) => ctx.stderr.write(`acetate: waiting for image users (creates from images, pulls and imports in progress) to let go of ${file}\n`);
}

function usersOf(list: ActualContainer[], id: string): string[] {
  return list.filter((c) => c.applied.spec.image?.digest === id).map((c) => c.key);
}

const IMAGE_SUBCOMMANDS = { list: 'list', ls: 'list', pull: 'pull', import: 'import', rm: 'rm', remove: 'rm', prune: 'prune' } as const;

export const imageCommand: Command = {
  name: 'image',
  summary: 'Manage OCI images used as templates (list, pull, import, rm, prune)',
  usage: USAGE,
  async run(argv, ctx) {
    const { sub, positionals, values } = parseSubcommand('image', argv, IMAGE_SUBCOMMANDS, { output: outputOption('table'), all: { type: 'boolean' } });
    const { runtime } = await ctx.openRuntime();
    const images = runtime.images;
    if (!images) throw new UsageError(`the ${runtime.name} runtime cannot run images`);
    switch (sub) {
      case 'list': {
        const list = await images.list();
        if (values.output === 'json') {
          print(ctx.stdout, JSON.stringify(list, null, 2));
          return 0;
        }
        const rows = list.map((r) => [
          r.names.join(',') || '<none>',
          shortDigest(r.id),
          String(r.layers.length),
          mib(r.layers.reduce((n, l) => n + l.size, 0)),
          age(r.pulledAt),
        ]);
        ctx.stdout.write(table(['NAME', 'ID', 'LAYERS', 'SIZE', 'AGE'], rows));
        return 0;
      }
      case 'pull': {
        if (positionals.length !== 1) throw new UsageError('image pull needs REF');
        // Bytes and layers as they arrive, where a person watches (stderr a terminal).
        if (process.stderr.isTTY) images.onPullProgress = terminalProgress(ctx.stderr);
        const rec = await images.pull(positionals[0]!);
        print(ctx.stdout, `${positionals[0]}: ${rec.id} (${rec.layers.length} layers)`);
        return 0;
      }
      case 'import': {
        if (positionals.length < 1 || positionals.length > 2) throw new UsageError('image import needs FILE [NAME]');
        const rec = await images.importArchive(path.resolve(positionals[0]!), positionals[1]);
        print(ctx.stdout, `${rec.names.join(', ') || '<no name>'}: ${rec.id} (${rec.layers.length} layers) imported from ${positionals[0]}`);
        return 0;
      }
      case 'rm': {
        if (positionals.length === 0) throw new UsageError('image rm needs REF or ID');
        // No store here yet: no such image, and taking the lock would make its dirs (see prune).
        if (!(await images.exists())) throw new ImageStoreError(`image '${positionals[0]}' is not on this node`);
        // Who uses an image is read under the lock: a create in flight has its record by then.
        await images.exclusive(
          async () => {
            const list = await runtime.list();
            for (const p of positionals) {
              const rec = await images.remove(p, { inUseBy: (id) => usersOf(list, id) });
              print(ctx.stdout, `removed ${p} (${rec.id}); its layers go at the next \`acetate image prune\``);
            }
          },
          { onWait: waiting(ctx) },
        );
        return 0;
      }
      case 'prune': {
        // A node that never had an image: nothing to remove, and nothing made (the lock file would make the dirs).
        const r = !(await images.exists())
          ? { images: [], layers: 0, blobs: 0, bytes: 0, skipped: undefined }
          : await images.exclusive(
              async () => {
                const list = await runtime.list();
                const unused = values.all ? (await images.list()).filter((i) => usersOf(list, i.id).length === 0).map((i) => i.id) : [];
                return images.prune({ unusedImages: unused });
              },
              { onWait: waiting(ctx) },
            );
        print(
          ctx.stdout,
          `removed ${r.images.length} image(s), ${r.layers} layer(s), ${r.blobs} blob(s), ${mib(r.bytes)} of blobs${r.skipped ? `; ${r.skipped}` : ''}`,
        );
        return 0;
      }
    }
  },
};

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)}MiB`;
}
