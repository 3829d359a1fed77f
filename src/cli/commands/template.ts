import path from 'node:path';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { outputOption, parseSubcommand } from '../args.js';
import { table, age } from '../table.js';
import { describeTemplate } from './template-describe.js';
import { commandLine } from '../converge-input.js';

const USAGE = `Usage:
  acetate template import NAME SOURCE   install a template from a directory or a .tar/.tar.gz rootfs
  acetate template list                 list installed templates (host = this node's root filesystem)
  acetate template rm NAME              remove a template (refused while a container uses it)
  acetate template describe NAME        what a template is; for host, what it hides on this node

import and rm take the state dir's lock (see acetate apply --help); --wait waits for its holder.`;

const TEMPLATE_SUBCOMMANDS = { import: 'import', list: 'list', ls: 'list', describe: 'describe', rm: 'rm', remove: 'rm' } as const;

export const templateCommand: Command = {
  name: 'template',
  summary: 'Manage base OS templates (import, list, rm)',
  usage: USAGE,
  async run(argv, ctx) {
    const { sub, positionals, values } = parseSubcommand('template', argv, TEMPLATE_SUBCOMMANDS, { output: outputOption('table'), wait: { type: 'boolean' } });
    if (sub === 'import' || sub === 'rm') await ctx.lockNode({ wait: !!values.wait, command: commandLine() });
    const { runtime, templates } = await ctx.openRuntime();
    switch (sub) {
      case 'import': {
        if (positionals.length !== 2) throw new UsageError('template import needs NAME and SOURCE');
        const [name, source] = positionals as [string, string];
        await templates.import(name, path.resolve(source));
        print(ctx.stdout, `template ${name} imported from ${source}`);
        return 0;
      }
      case 'list': {
        const list = await templates.list();
        if (values.output === 'json') {
          print(ctx.stdout, JSON.stringify(list, null, 2));
          return 0;
        }
        ctx.stdout.write(
          table(
            ['NAME', 'PATH', 'AGE'],
            list.map((t) => [t.name, t.path, t.importedAt ? age(t.importedAt) : '-']),
          ),
        );
        return 0;
      }
      case 'describe': {
        if (positionals.length !== 1) throw new UsageError('template describe needs NAME');
        return describeTemplate(positionals[0]!, String(values.output), ctx);
      }
      case 'rm': {
        if (positionals.length !== 1) throw new UsageError('template rm needs NAME');
        const name = positionals[0]!;
        const inUseBy = (await runtime.list()).filter((c) => c.applied.spec.template === name).map((c) => c.key);
        await templates.remove(name, { inUseBy });
        print(ctx.stdout, `template ${name} removed`);
        return 0;
      }
    }
  },
};
